"""40 days of event time through a real broker and redis-server: the 7 d and 30 d windows, the
backlog age and the engagement KPIs of a month (active users, stickiness, activation) equal the
offline reference, also after SIGKILL, and a worker restarted with other windows publishes no
wrong number while it fills them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.test_pipeline import (
    RULES,
    assert_published,
    expected_for,
    metric_samples,
    wait_processed,
    wait_same,
)
from tests.servers import Broker, RedisServer, Worker, cxkpi, wait_until

pytestmark = pytest.mark.integration

DAYS = 40
EVERY_S = 45  # one event every 45 s of event time: 76,800 events (about 9,400 of 89 users)


def generate_days(
    path: Path,
    env: dict[str, str],
    seed: int,
    days: int = DAYS,
    every_s: int = EVERY_S,
    activity: bool = True,
) -> list[bytes]:
    """A log of `days` days, an event every `every_s` seconds, ending an hour before now (so
    none of it is in the future); without product activity unless `activity`."""
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    count = days * 86400 // every_s
    cxkpi(
        "generate",
        *("--count", str(count), "--rate", f"{1 / every_s:.10f}", "--seed", str(seed)),
        *("--start", (end - timedelta(days=days)).isoformat(), "--out", str(path), "--quiet"),
        *(() if activity else ("--activity-share", "0")),
        env=env,
    )
    return path.read_bytes().splitlines()


def produce(lines: list[bytes], path: Path, env: dict[str, str]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")
    cxkpi("produce", str(path), "--quiet", env=env)


def day_of(line: bytes, start: bytes) -> float:
    """Days between two events' occurred_at (the generator writes them in order)."""

    def moment(raw: bytes) -> datetime:
        text = raw.split(b'"occurred_at":"', 1)[1].split(b'"', 1)[0].decode()
        return datetime.fromisoformat(text)

    return (moment(line) - moment(start)).total_seconds() / 86400


def returns_in(lines: list[bytes]) -> tuple[int, int]:
    """How many tickets of the log are reopened 8 days or more after a solve, and how many carts
    created by a known customer are ordered without a customer id after their shopper was away
    for an hour or more: what must be remembered over days and weeks."""
    solved: dict[str, datetime] = {}
    late_reopens = returns = 0
    carts: dict[str, tuple[datetime, bool]] = {}  # cart -> last event, came back after a break
    known: set[str] = set()  # carts created with a customer id
    for line in lines:
        event = orjson.loads(line)
        kind, at = event["type"], datetime.fromisoformat(event["occurred_at"])
        if kind == "ticket_solved":
            solved[event["ticket_id"]] = at
        elif kind == "ticket_reopened" and event["ticket_id"] in solved:
            late_reopens += at - solved[event["ticket_id"]] >= timedelta(days=8)
        elif "cart_id" in event:
            cart = event["cart_id"]
            if kind == "cart_created" and "customer_id" in event:
                known.add(cart)
            last, back = carts.get(cart, (at, False))
            back = back or at - last >= timedelta(hours=1)
            carts[cart] = (at, back)
            returns += kind == "order_placed" and back and cart in known
    return late_reopens, returns


def test_40_days_equal_the_reference_in_long_windows_also_after_sigkill(
    broker: Broker, redis_server: RedisServer, worker_env: dict[str, str], tmp_path: Path
) -> None:
    lines = generate_days(tmp_path / "events.jsonl", worker_env, seed=35)
    late_reopens, returns = returns_in(lines)
    assert late_reopens > 20 and returns > 20  # remembered for weeks and days
    worker = Worker(worker_env, tmp_path / "worker-1.log")
    try:
        worker.wait_ready()
        produce(lines, tmp_path / "all.jsonl", worker_env)
        wait_until(lambda: worker.processed() > len(lines) // 2, 240, "half the log processed")
        worker.kill()
        worker = Worker(worker_env, tmp_path / "worker-2.log")
        worker.wait_ready()
        wait_processed(worker, len(lines))
        expected = expected_for(broker, len(lines))
        month, week = expected["windows"]["30d"], expected["windows"]["7d"]
        assert month["nps"]["overall"]["responses"] > 2000
        assert week["nps"]["overall"]["responses"] < month["nps"]["overall"]["responses"] / 3
        assert month["resolution_time"]["overall"]["count"] > 500
        assert expected["live"]["backlog_age"]["overall"]["tickets"] > 0
        customers = expected["live"]["customers"]["overall"]
        assert customers["active"] > 100 and 0 < customers["retained"] < customers["previous"]
        assert customers["repeat_customers"] > 0 and customers["anonymous_orders"] > 0
        # users of a month: active, sticky, activated or not (judged a week after sign-up)
        assert month["active_users"]["overall"]["users"] > 30
        assert month["activation_rate"]["overall"]["signups"] > 20
        assert expected["live"]["stickiness"]["overall"]["ratio"] is not None
        assert_published(worker, redis_server, expected)
    finally:
        worker.stop()


def long_window_samples(worker: Worker, window: str) -> int:
    return sum(1 for (_, labels) in metric_samples(worker) if ("window", window) in labels)


def test_a_restart_with_long_windows_marks_them_incomplete_until_they_are_filled(
    broker: Broker, redis_server: RedisServer, worker_env: dict[str, str], tmp_path: Path
) -> None:
    """20 days with windows 5m,1h,24h; then a worker with 7d and 30d too. It rebuilds them from
    the 1-minute buckets it has (the last 24 h), publishes them with `complete: false` and a
    reason and no Prometheus sample, and publishes the 7 d window again once it has slid past
    the restart (after 15 more days); the 30 d one stays withheld."""
    # no product activity: a user forgotten under the 24 h windows stays forgotten when the 30 d
    # window comes (docs/semantics.md), which the reference, one set of rules, does not model
    lines = generate_days(tmp_path / "events.jsonl", worker_env, seed=20, activity=False)
    cut = next(i for i, line in enumerate(lines) if day_of(line, lines[0]) >= 20)
    # without cxkpi.toml, whose NPS alert needs the 30d window, and without change alerts,
    # whose 7d baselines would keep a week of hourly buckets (the 7d window would then be whole
    # at once); with the ticket retention the 30d window will need (a solved ticket forgotten
    # under a shorter one stays forgotten)
    config = tmp_path / "short.toml"
    config.write_text("[change]\nenabled = false\n")
    short = {
        **worker_env,
        "CXKPI_WINDOWS": "5m,1h,24h",
        "CXKPI_CONFIG": str(config),
        "CXKPI_TICKET_RETENTION": "43205m",
    }
    retained = replace(RULES, ticket_retention_s=43205 * 60)
    worker = Worker(short, tmp_path / "worker-short.log")
    try:
        worker.wait_ready()
        produce(lines[:cut], tmp_path / "first.jsonl", short)
        wait_processed(worker, cut)
    finally:
        worker.stop()
    worker = Worker(worker_env, tmp_path / "worker-long.log")
    try:
        worker.wait_ready()
        wait_until(lambda: worker.processed() == cut, 60, "the restarted worker to recover")
        doc: dict[str, Any] = worker.kpis() or {}
        for window in ("7d", "30d"):
            assert doc["windows"][window]["complete"] is False
            assert "restart with other windows or steps" in doc["windows"][window]["reason"]
            assert long_window_samples(worker, window) == 0
        assert doc["windows"]["24h"]["complete"] is True
        assert long_window_samples(worker, "24h") > 0
        assert "stickiness" not in doc["live"]  # withheld while the 30 d window fills
        expected = expected_for(broker, cut, replace(retained, windows_s=(300, 3600, 86400)))
        expected.pop("change")  # see short_windows
        expected["live"].pop("stickiness", None)
        wait_same(lambda: short_windows(worker, ("5m", "1h", "24h")), expected)

        produce(lines[cut:], tmp_path / "rest.jsonl", worker_env)
        wait_processed(worker, len(lines))
        doc = worker.kpis() or {}
        assert doc["windows"]["7d"]["complete"] is True
        assert doc["windows"]["30d"]["complete"] is False
        assert long_window_samples(worker, "7d") > 0 and long_window_samples(worker, "30d") == 0
        assert "stickiness" not in doc["live"]
        expected = expected_for(
            broker, len(lines), replace(retained, windows_s=(300, 3600, 86400, 7 * 86400))
        )
        expected.pop("change")
        expected["live"].pop("stickiness", None)
        wait_same(lambda: short_windows(worker, ("5m", "1h", "24h", "7d")), expected)
    finally:
        worker.stop()


def short_windows(worker: Worker, names: tuple[str, ...]) -> dict[str, Any]:
    """The worker's document with only these windows, and without the change section: the
    change alerts' baselines, kept by the restarted worker only, are rebuilt after the restart
    as the long windows are (incomplete until filled), which the reference does not model; the
    40-day test above and the fleet test compare that section."""
    doc = worker.kpis() or {}
    doc.pop("change", None)
    return {**doc, "windows": {w: v for w, v in doc.get("windows", {}).items() if w in names}}
