"""The benchmark's rate from a worker's markers: its last round's wait for the flush timer is
latency, not throughput, and stays out."""

from __future__ import annotations

from bench.phases import rate_from, span


def markers(*rounds: tuple[float, list[int]]) -> list[tuple[float, tuple[str, bytes], int]]:
    """Each round: its time and the records done per partition then (its markers, 5 ms apart)."""
    return [
        (t + 0.005 * p, ("state-changelog", f"m:{p}".encode()), count)
        for t, counts in rounds
        for p, count in enumerate(counts)
    ]


def test_the_rate_ends_at_the_round_before_the_one_that_completed_the_log() -> None:
    history = markers(
        (10.0, [2_000, 2_000]),
        (10.5, [4_000, 4_000]),
        (11.0, [6_000, 5_000]),
        (12.0, [6_000, 6_000]),  # after the timer's wait for the last 1,000 records
    )
    assert span(history, 12_000) == (10.0, 4_000, 11.0, 11_000)
    assert rate_from(9.0, *span(history, 12_000), 12_000) == (7_000, 1.0)


def test_a_run_mostly_in_its_last_round_ends_with_it() -> None:
    history = markers((10.0, [1_000, 1_000]), (10.5, [2_000, 2_000]), (11.5, [5_000, 5_000]))
    assert span(history, 10_000) == (10.0, 2_000, 11.5, 10_000)
    assert span(markers((10.0, [5_000, 5_000])), 10_000) == (10.0, 10_000, 10.0, 10_000)
