"""What changed between an entity's contributions before and after an evaluation.

The lists are short (a cart's few samples, a user's distinct-count samples and sessions), and an
evaluation usually changes a few of them, so the difference is taken as multisets after the
common head and tail are set aside (the rules build their lists in a stable order, mostly of the
same tuples).

A sample gone at one time and added at another *moves*: a distinct count's user moves on to its
latest closed bucket every step. Applied as a move, it changes the two buckets and only the
windows that hold one of them; a window holding both keeps its totals (and its rendering).
"""

from __future__ import annotations

from typing import Any

from stream.state.facts import NOW, Contribution

#: (from time, to time) -> the samples that move so.
Moves = dict[tuple[int, int], list[Contribution]]


def difference(
    old: list[Contribution], new: list[Contribution]
) -> tuple[Moves, list[Contribution], list[Contribution], list[Contribution]]:
    """(moves, turns, added, gone) that turn `old` into `new`. A turn is a sample held in an
    earlier bucket (stream/state/earlier.py) whose earlier bucket is where the one it replaces
    counted: a user's first event in a new bucket."""
    head, shorter = 0, min(len(old), len(new))
    while head < shorter and old[head] == new[head]:
        head += 1
    old_end, new_end = len(old), len(new)
    while min(old_end, new_end) > head and old[old_end - 1] == new[new_end - 1]:
        old_end, new_end = old_end - 1, new_end - 1
    gone = old[head:old_end]
    added: list[Contribution] = []
    for contribution in new[head:new_end]:
        try:
            gone.remove(contribution)
        except ValueError:
            added.append(contribution)
    if not (gone and added):
        return {}, [], added, gone
    turns, added, gone = _turns(added, gone)
    moves, added, gone = _moves(added, gone)
    return moves, turns, added, gone


def _turns(
    added: list[Contribution], gone: list[Contribution]
) -> tuple[list[Contribution], list[Contribution], list[Contribution]]:
    """Samples held in an earlier bucket that replace one counted in that bucket; and what is
    left added and gone."""
    counted = {c[:4]: i for i, c in enumerate(gone) if len(c) == 5}
    if not counted:
        return [], added, gone
    turns: list[Contribution] = []
    rest: list[Contribution] = []
    turned: set[int] = set()
    for contribution in added:
        i = None
        if len(contribution) == 5:
            i = counted.pop((contribution[4], *contribution[1:4]), None)
        if i is None:
            rest.append(contribution)
        else:
            turns.append(contribution)
            turned.add(i)
    return turns, rest, [c for i, c in enumerate(gone) if i not in turned]


def _moves(
    added: list[Contribution], gone: list[Contribution]
) -> tuple[Moves, list[Contribution], list[Contribution]]:
    """Samples gone at one time and added at another, grouped by (from, to); and what is left
    added and gone. Live gauges (NOW) do not move, nor do samples held in an earlier bucket
    as well (stream/state/earlier.py)."""
    at: dict[tuple[Any, ...], list[int]] = {}  # (measure, segments, value) -> indices in gone
    for i, contribution in enumerate(gone):
        if contribution[0] != NOW and len(contribution) == 4:
            at.setdefault(contribution[1:], []).append(i)
    moves: Moves = {}
    rest: list[Contribution] = []
    moved: set[int] = set()
    for contribution in added:
        t = contribution[0]
        indices = at.get(contribution[1:]) if t != NOW and len(contribution) == 4 else None
        if indices:
            i = indices.pop()
            moved.add(i)
            moves.setdefault((gone[i][0], t), []).append(contribution)
        else:
            rest.append(contribution)
    return moves, rest, [c for i, c in enumerate(gone) if i not in moved]
