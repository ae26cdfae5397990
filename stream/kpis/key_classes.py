"""A user's distinct-count keys in classes: keys that count alike are read as one.

A user counts once per distinct-count key: overall, its channel and its region in the active
users, overall and per feature in a feature's users (stream/kpis/users.py, `keys_of`). Keys of
one measure seen at the same times, from the same summary, give samples that differ only in
their segment, so they are kept as one class, with one list of times, and give one sample with
all their segments (a sample counts in each of its segments: stream/state/measures.py). A user
of one channel and one region, the usual user, has one class of active-user keys rather than
three, and an event's distinct-count work (its times kept, the samples that move on and are
handed to the state) is done per class; the buckets still receive a delta per segment.

A fact seen at part of a class's keys splits it. The classes follow from the summary and the
facts alone, so a list read anew has the classes of one whose facts were taken in one by one.
"""

from __future__ import annotations

from bisect import bisect_left
from functools import lru_cache
from typing import Any

from stream.kpis import shared
from stream.kpis.users import Key, Summary
from stream.state.facts import Contribution, Segments

#: A class's keys, sorted: it names the class, and its sample's segments follow from it.
ClassId = tuple[Key, ...]


class KeyClass:
    """Keys of one measure with the same summary times and the same facts since."""

    __slots__ = ("base", "id", "last", "prev", "times")

    def __init__(
        self, id: ClassId, last: int | None, prev: int | None, base: int | None, times: list[int]
    ) -> None:
        self.id = id
        self.last = last  # the summary's latest time (None: not in the summary)
        self.prev = prev  # the summary's latest time in an earlier long-step bucket than it
        self.base = base  # the time of a recalled memory's samples (already counted)
        self.times = times  # the facts' times since, ascending

    def samples(self, kind: str, step: int) -> list[Contribution]:
        """The class's sample in the bucket of its latest time, held in the bucket of its
        latest earlier time as well while that bucket is open (stream/state/earlier.py), less
        the remembered one (a recalled baseline) where that is another bucket."""
        last, prev, times = self.last, self.prev, self.times
        t = times[-1] if times else last
        if last is not None and last > t:
            t = last
        at = t - t % step
        i = bisect_left(times, at)  # the latest time in an earlier bucket: raw or folded
        earlier = times[i - 1] if i else None
        folded = last if last is not None and last < at else prev
        if folded is not None and (earlier is None or folded > earlier):
            earlier = folded
        base = self.base
        was = None if base is None else base - base % step
        if at == was:
            return []
        measure, segments = sample_of(self.id, kind)
        if earlier is None:
            out: list[Contribution] = [(at, measure, segments, 1)]
        else:
            out = [(at, measure, segments, 1, earlier - earlier % step)]
        if was is not None:
            out.append((was, measure, segments, -1))
        return out


class KeyClasses:
    """A user's distinct-count keys, by class. `changed` lists the classes made or split since
    it was last cleared: their samples are to be worked out anew (a split one's are gone)."""

    __slots__ = ("_covers", "by_key", "changed", "classes")

    def __init__(self, summary: Summary) -> None:
        self.classes: dict[ClassId, KeyClass] = {}  # in the order made
        self.by_key: dict[Key, KeyClass] = {}
        self.changed: list[ClassId] = []
        groups: dict[tuple[Any, ...], list[Key]] = {}
        base = summary.base
        for key, (last, prev) in summary.seen.items():
            groups.setdefault((key[0], last, prev, base.get(key)), []).append(key)
        for (_, last, prev, at), keys in groups.items():
            self._make(tuple(sorted(keys)), last, prev, at, [])
        self.changed.clear()
        #: per keys covered, their classes, while no class was made or split since
        self._covers: dict[tuple[Key, ...], list[KeyClass]] = {}

    def cover(self, keys: tuple[Key, ...]) -> list[KeyClass]:
        """The classes whose keys are exactly `keys` (the keys of a fact): those only partly
        among them are split, keys not seen yet make a class per measure. A user's events have
        few combinations of keys, so each is covered once, mostly."""
        covered = self._covers.get(keys)
        if covered is not None:
            return covered
        inside: dict[ClassId, list[Key]] = {}  # per class met, its keys among them
        unseen: dict[str, list[Key]] = {}  # per measure, the keys not seen yet
        for key in keys:
            found = self.by_key.get(key)
            if found is None:
                unseen.setdefault(key[0], []).append(key)
            else:
                inside.setdefault(found.id, []).append(key)
        covered = []
        split = False
        for id, among in inside.items():
            whole = self.classes[id]
            if len(among) == len(id):
                covered.append(whole)
                continue
            del self.classes[id]
            self.changed.append(id)
            split = True
            last, prev, base, times = whole.last, whole.prev, whole.base, whole.times
            covered.append(self._make(tuple(sorted(among)), last, prev, base, list(times)))
            self._make(tuple(key for key in id if key not in among), last, prev, base, times)
        for new in unseen.values():
            covered.append(self._make(tuple(sorted(new)), None, None, None, []))
        if split:
            self._covers.clear()  # the classes they covered are no more
        self._covers[keys] = covered
        return covered

    def _make(
        self, id: ClassId, last: int | None, prev: int | None, base: int | None, times: list[int]
    ) -> KeyClass:
        made = self.classes[id] = KeyClass(id, last, prev, base, times)
        for key in id:
            self.by_key[key] = made
        self.changed.append(id)
        return made


@lru_cache(maxsize=4096)
def sample_of(id: ClassId, kind: str) -> tuple[str, Segments]:
    """The measure (of one resolution) and segments of a class's sample."""
    return f"{id[0][0]}@{kind}", shared(tuple((dim, seg) for _, dim, seg in id))
