"""`cxkpi generate --shift`: the change injected is where, when and as large as asked, and
nothing else of the generated traffic changes."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from stream.tools.generate import DEFAULT_PROFILE, generate
from stream.tools.shift import Shift, parse_shift

START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_the_syntax() -> None:
    assert parse_shift("nps:-15:team=billing@10m+2h") == Shift(
        "nps", -15.0, "team", "billing", 600.0, 7200.0
    )
    assert parse_shift("cart_abandonment:10") == Shift("cart_abandonment", 10.0)
    assert parse_shift("nps:-5@30s") == Shift("nps", -5.0, start_s=30.0, duration_s=math.inf)
    for bad in ("nps", "nps:x", "nps:-5:team", "csat:-5", "nps:-5:priority=high", "nps:-5@1h+0s"):
        with pytest.raises(ValueError):
            parse_shift(bad)


def nps(events: list[dict], team: str, inside: bool, shift: Shift) -> float:
    chosen = [
        e["score"]
        for e in events
        if e["type"] == "nps"
        and e["team"] == team
        and (shift.start_s <= seconds(e) < shift.start_s + shift.duration_s) == inside
    ]
    assert len(chosen) > 500
    return 100 * (sum(s >= 9 for s in chosen) - sum(s <= 6 for s in chosen)) / len(chosen)


def seconds(event: dict) -> float:
    moment = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
    return (moment - START).total_seconds()


def test_an_nps_drop_in_one_team_for_a_while_and_nothing_else() -> None:
    """Billing's NPS drops by 40 points while the shift lasts; before it the events are the
    same ones, and other teams and billing afterwards keep their NPS (the random draws go on
    differently once a score, and so a comment's mood, has changed)."""
    shift = Shift("nps", -40, "team", "billing", start_s=2000, duration_s=2000)
    profile = replace(DEFAULT_PROFILE, shift=shift)
    plain = list(generate(4, START, 20, count=120_000))
    shifted = list(generate(4, START, 20, count=120_000, profile=profile))
    before = [e for e in plain if seconds(e) < shift.start_s]
    assert before == shifted[: len(before)]
    assert nps(shifted, "billing", True, shift) == pytest.approx(
        nps(plain, "billing", True, shift) - 40, abs=8
    )
    assert nps(shifted, "billing", False, shift) == pytest.approx(
        nps(plain, "billing", False, shift), abs=8
    )
    assert nps(shifted, "tech", True, shift) == pytest.approx(
        nps(plain, "tech", True, shift), abs=8
    )


def test_a_cart_abandonment_rise_for_every_segment() -> None:
    profile = replace(DEFAULT_PROFILE, shift=Shift("cart_abandonment", 20))

    def share(events: list[dict]) -> float:
        carts: dict[str, set[str]] = {}
        for e in events:
            if "cart_id" in e:
                carts.setdefault(e["cart_id"], set()).add(e["type"])
        return sum("order_placed" not in kinds for kinds in carts.values()) / len(carts)

    plain = share(list(generate(5, START, 20, count=60_000)))
    shifted = share(list(generate(5, START, 20, count=60_000, profile=profile)))
    assert shifted - plain == pytest.approx(0.2, abs=0.05)
