"""The changelog protocol alone: epochs close into records and a marker; reading rolls back what
no marker committed, and numbering never reuses a torn epoch."""

from __future__ import annotations

from typing import Any

import orjson

from stream.state.changelog import Epochs, marker_key, read, record_key


def close(epochs: Epochs, values: dict[bytes, Any]) -> tuple[list[Any], Any]:
    return epochs.close(3, values.get, {"offset": len(values)})


def test_a_closed_epoch_writes_each_changed_key_once_with_its_value_before() -> None:
    epochs = Epochs()
    key = record_key("e", 3, "cart-1")
    epochs.before[key] = None  # new in this epoch
    assert epochs.changed == 1  # a record to write
    records, (marker, body) = close(epochs, {key: [[1, 0, "e1"]]})
    assert records == [(key, orjson.dumps([1, [[1, 0, "e1"]], None]))]
    assert marker == marker_key(3) == b"m:3"
    assert orjson.loads(body) == {"epoch": 1, "aborted": [], "offset": 1}
    assert epochs.epoch == 2 and not epochs.has_changes
    # deleted in epoch 2: its record says so; in epoch 3 a tombstone compacts it away
    epochs.before[key] = [[1, 0, "e1"]]
    records, _ = close(epochs, {})
    assert records == [(key, orjson.dumps([2, None, [[1, 0, "e1"]]]))]
    assert epochs.changed == 1  # its tombstone, to write
    records, _ = close(epochs, {})
    assert records == [(key, None)]


def test_an_entitys_facts_kept_through_the_epoch_are_written_once() -> None:
    """Its value before the epoch names the facts it still holds by their index: a rollback
    gets them back, with the ones folded away since, in their order."""
    epochs = Epochs(epoch=2)
    key = record_key("e", 3, "user-1")
    kept, folded, new = (5, 0, "e5"), (1, 0, "e1"), (9, 0, "e9")
    epochs.before[key] = [folded, kept]  # a copy of the list: the same fact objects
    records, _ = close(epochs, {key: [kept, new]})
    assert records == [(key, orjson.dumps([2, [kept, new], [folded, 0]]))]
    _, marker = close(Epochs(epoch=1), {})  # only epoch 1 is committed: 2 rolls back
    committed = read(3, [*records, marker])
    assert committed.values == [("e", "user-1", [list(folded), list(kept)])]


def test_reading_rolls_back_what_no_marker_committed() -> None:
    epochs = Epochs()
    a, b = record_key("e", 3, "a"), record_key("b", 3, 17)
    epochs.before[a] = None
    first, marker = close(epochs, {a: "one"})
    epochs.before[a], epochs.before[b] = "one", None
    torn, _ = close(epochs, {a: "two", b: [["m", "", "", -1, 5]]})  # its marker never written
    rows = dict(first) | {marker[0]: marker[1]} | dict(torn)
    committed = read(3, [(k, v) for k, v in rows.items() if v is not None])
    assert committed.values == [("e", "a", "one")]  # b had no value before epoch 2
    assert committed.meta["offset"] == 1
    # epoch 2 may be partly written: aborted, and the next epoch is 3
    assert committed.epochs.epoch == 3 and committed.epochs.aborted == {2}
    assert committed.epochs.marker_due  # the rollback is committed before anything is applied


def test_an_aborted_epoch_stays_aborted_while_its_records_remain() -> None:
    epochs = Epochs(epoch=3, aborted={2})
    key = record_key("e", 3, "a")
    stale = (key, orjson.dumps([2, "torn", "before"]))  # left over from the aborted epoch 2
    epochs.before[record_key("e", 3, "z")] = None
    _, marker = close(epochs, {record_key("e", 3, "z"): "z"})
    committed = read(3, [stale, marker])
    assert ("e", "a", "before") in committed.values  # epoch 2 <= 3 committed, yet aborted
    assert committed.epochs.aborted == {2, 4}


def test_a_crash_in_the_round_that_commits_a_rollback_never_reuses_its_epoch() -> None:
    """Marker 1; epoch 2 torn; recovery numbers 3 and rolls back; its first round (epoch 3)
    writes a record and dies before the marker. The next recovery must abort 3 as well and
    number past it, or a later marker 3 would commit that leftover record."""
    key, other = record_key("e", 3, "a"), record_key("e", 3, "b")
    epochs = Epochs()
    epochs.before[key] = None
    first, marker = close(epochs, {key: "one"})
    rows = dict(first) | {marker[0]: marker[1]}
    rows[key] = orjson.dumps([2, "torn", "one"])  # epoch 2, never committed
    recovered = read(3, rows.items()).epochs
    assert (recovered.epoch, recovered.aborted) == (3, {2})
    recovered.before[other] = None  # the recovery's round writes a record of epoch 3 ...
    leftover, _ = close(recovered, {other: "leftover"})  # ... and dies before its marker
    rows.update(leftover)
    again = read(3, rows.items())
    assert ("e", "b", "leftover") not in again.values
    assert again.epochs.epoch == 4 and again.epochs.aborted == {2, 3}
    # the next marker keeps both aborted while their records remain
    _, marker = close(again.epochs, {})
    rows[marker[0]] = marker[1]
    assert ("e", "b", "leftover") not in read(3, rows.items()).values
