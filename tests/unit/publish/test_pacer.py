"""Pacing of window totals: at most a budget of a core, on average."""

from __future__ import annotations

from stream.publish.held import Pacer


def test_the_next_totals_wait_their_cost_over_the_budget() -> None:
    pacer = Pacer(budget=0.02)
    assert pacer.due(0.0)
    pacer.spent(10.0, cpu_s=0.1)  # 100 ms at 2 %: 5 s
    assert not pacer.due(14.9) and pacer.due(15.0)


def test_nothing_spent_holds_nothing_back_and_waits_never_shrink() -> None:
    pacer = Pacer(budget=0.02)
    pacer.spent(10.0, cpu_s=0.0)
    assert pacer.due(10.0)
    pacer.spent(10.0, cpu_s=0.2)  # until 20 s
    pacer.spent(11.0, cpu_s=0.01)  # a cheap write meanwhile (a new partition): until 11.5 s
    assert not pacer.due(19.9) and pacer.due(20.0)
