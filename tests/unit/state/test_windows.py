"""Bucket and window arithmetic: boundaries, grace, running totals."""

import random

from stream.state.windows import Window, bucket_end, is_late, window_name, window_range

STEP = 60_000


def test_bucket_end_is_exclusive_upper_bound() -> None:
    assert bucket_end(0, STEP) == STEP
    assert bucket_end(STEP - 1, STEP) == STEP
    assert bucket_end(STEP, STEP) == 2 * STEP


def test_window_holds_buckets_ending_in_half_open_range() -> None:
    # S = 10:15:30 -> 5 m window holds buckets ending 10:11 .. 10:15, i.e. [10:10, 10:15)
    s = (10 * 60 + 15) * STEP + 30_000
    lo, hi = window_range(s, 5 * STEP, STEP)
    assert (lo, hi) == (10 * 60 + 10, 10 * 60 + 14)


def test_bucket_ending_exactly_at_stream_time_is_included() -> None:
    lo, hi = window_range(10 * STEP, 5 * STEP, STEP)
    assert hi == 9  # bucket [9, 10) ends at S
    assert lo == 5  # bucket [4, 5) ends at S - W: excluded


def test_grace_boundary() -> None:
    grace = 5 * STEP
    s = 20 * STEP
    # bucket [14, 15) ends at 15 = S - grace: not late
    assert not is_late(14 * STEP, s, STEP, grace)
    # bucket [13, 14) ends at 14 < S - grace: late
    assert is_late(13 * STEP + STEP - 1, s, STEP, grace)
    assert not is_late(0, None, STEP, grace)


def test_running_totals_add_and_remove_buckets() -> None:
    buckets = {k: {("m", "", "", -1): k} for k in range(10)}
    window = Window(3 * STEP, STEP)
    window.advance(5 * STEP, buckets)  # buckets 2, 3, 4
    assert window.totals == {("m", "", "", -1): 2 + 3 + 4}
    window.advance(7 * STEP + 1, buckets)  # buckets 4, 5, 6
    assert window.totals == {("m", "", "", -1): 4 + 5 + 6}
    fresh = Window(3 * STEP, STEP)
    fresh.rebuild(7 * STEP + 1, buckets)
    assert fresh.totals == window.totals


def test_running_totals_survive_a_long_jump() -> None:
    buckets = {k: {("m", "", "", -1): 1} for k in (1, 2, 500, 501)}
    window = Window(3 * STEP, STEP)
    window.advance(3 * STEP, buckets)
    assert window.totals == {("m", "", "", -1): 2}
    window.advance(502 * STEP, buckets)
    assert window.totals == {("m", "", "", -1): 2}
    window.advance(10_000 * STEP, buckets)
    assert window.totals == {}


def test_sliding_forward_equals_rebuilding_at_every_step() -> None:
    rng = random.Random(7)
    buckets = {k: {("m", "", "", -1): rng.randint(1, 9)} for k in range(400) if rng.random() < 0.7}
    window = Window(60 * STEP, STEP)
    t = 0
    for _ in range(300):  # small steps, jumps within the window, and past it
        t += rng.choice((1, STEP // 2, STEP, 3 * STEP, 59 * STEP, 70 * STEP))
        version, slid = window.version, window_range(t, 60 * STEP, STEP) != (window.lo, window.hi)
        window.advance(t, buckets)
        fresh = Window(60 * STEP, STEP)
        fresh.rebuild(t, buckets)
        assert (window.lo, window.hi, window.totals) == (fresh.lo, fresh.hi, fresh.totals)
        assert (window.version != version) == slid  # renders are reused only while it holds


def test_window_names() -> None:
    assert [window_name(s) for s in (300, 3600, 86400, 90, 7200, 7 * 86400)] == [
        "5m",
        "1h",
        "24h",
        "90s",
        "2h",
        "7d",
    ]
