"""A user's distinct-count keys in classes (stream/kpis/key_classes.py): keys seen at the same
times are one class with one sample of all their segments; any fact seen at part of a class
splits it."""

from __future__ import annotations

import random

from stream.kpis.key_classes import KeyClasses
from stream.kpis.users import ACTIVE, FEATURES, Key, Summary, keys_of
from stream.state.segments import UNKNOWN

MIN = 60_000
HOUR = 60 * MIN


def fact(t: int, channel: str | None, region: str, feature: str | None = None) -> tuple:
    """An activity fact as the engagement rules build it (the fields keys_of reads)."""
    kind = "f" if feature else "p"
    return (t, 0, f"e{t}", kind, channel, region, feature, None, None)


def take(classes: KeyClasses, facts: list[tuple]) -> None:
    for f in facts:
        for keys in classes.cover(keys_of(f)):
            keys.times.append(f[0])


def test_a_users_keys_seen_at_the_same_times_are_one_class_with_one_sample() -> None:
    classes = KeyClasses(Summary())
    take(classes, [fact(0, "web", "eu"), fact(90_000, "web", "eu")])
    assert list(classes.classes) == [
        ((ACTIVE, "", ""), (ACTIVE, "channel", "web"), (ACTIVE, "region", "eu"))
    ]
    (only,) = classes.classes.values()
    assert only.times == [0, 90_000]
    # the latest in the bucket of 1 m at 60 s, held in that of its latest earlier time (0)
    segments = (("", ""), ("channel", "web"), ("region", "eu"))
    assert only.samples("b", MIN) == [(MIN, "active_users@b", segments, 1, 0)]
    assert only.samples("l", HOUR) == [(0, "active_users@l", segments, 1)]


def test_a_fact_seen_at_part_of_a_class_splits_it() -> None:
    classes = KeyClasses(Summary())
    take(classes, [fact(0, "web", "eu")])
    classes.changed.clear()
    take(classes, [fact(MIN, None, "eu"), fact(2 * MIN, "web", "eu", feature="export")])
    by_key = {key: (keys.id, keys.times) for key, keys in classes.by_key.items()}
    overall = ((ACTIVE, "", ""), (ACTIVE, "region", "eu"))
    assert by_key[(ACTIVE, "", "")] == (overall, [0, MIN, 2 * MIN])
    assert by_key[(ACTIVE, "channel", "web")] == (((ACTIVE, "channel", "web"),), [0, 2 * MIN])
    assert by_key[(ACTIVE, "channel", UNKNOWN)][1] == [MIN]
    features = ((FEATURES, "", ""), (FEATURES, "feature", "export"))
    assert by_key[(FEATURES, "", "")] == (features, [2 * MIN])
    # the class split is gone, the ones made are to be worked out
    assert set(classes.changed) == set(classes.classes) | {
        ((ACTIVE, "", ""), (ACTIVE, "channel", "web"), (ACTIVE, "region", "eu"))
    }


def test_keys_with_other_summary_times_are_other_classes() -> None:
    a, web, eu = (ACTIVE, "", ""), (ACTIVE, "channel", "web"), (ACTIVE, "region", "eu")
    summary = Summary({a: [5 * HOUR, HOUR], web: [5 * HOUR, HOUR], eu: [5 * HOUR, None]})
    classes = KeyClasses(summary)
    assert list(classes.classes) == [(a, web), (eu,)]
    recalled = KeyClasses(Summary({a: [HOUR, None], web: [HOUR, None]}, {a: HOUR}))
    assert list(recalled.classes) == [(a,), (web,)]  # one of them counted already


def test_classes_hold_exactly_the_keys_seen_at_the_same_facts() -> None:
    """On random facts of a few channels, regions and features: every key's class has the
    times of the facts it was seen at, and keys of one measure in different classes were seen
    at different facts."""
    rng = random.Random(7)
    for _ in range(300):
        classes = KeyClasses(Summary())
        facts = [
            fact(
                i * MIN,
                rng.choice(["web", "app", None]),
                rng.choice(["eu", "us"]),
                rng.choice([None, None, "export", "share", "search"]),
            )
            for i in range(rng.randrange(1, 12))
        ]
        take(classes, facts)
        seen: dict[Key, list[int]] = {}
        for f in facts:
            for key in keys_of(f):
                seen.setdefault(key, []).append(f[0])
        assert {key: keys.times for key, keys in classes.by_key.items()} == seen
        assert {key for keys in classes.classes.values() for key in keys.id} == set(seen)
        for keys in classes.classes.values():
            assert all(classes.by_key[key] is keys for key in keys.id)
        ids = list(classes.classes)
        for i, one in enumerate(ids):
            for other in ids[i + 1 :]:
                if one[0][0] == other[0][0]:
                    assert seen[one[0]] != seen[other[0]]
