"""The monitoring chain end to end: a real worker fed through a real broker, scraped by a real
Prometheus evaluating the generated rules, alerting through a real Alertmanager to a webhook."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from stream.monitoring.dashboard import panel_queries
from tests.monitoring_servers import Alertmanager, Prometheus, Webhook
from tests.servers import Worker, cxkpi, wait_until

pytestmark = pytest.mark.integration

#: NPS over 5m alerts below 0 after 2 s, with at least 5 replies
CONFIG = """
[windows]
sizes = ["5m", "1h", "24h", "30d"]
step = "10s"
long_step = "10s"
grace = "5m"
[segments]
max_values = 3
[alerting]
for = "2s"
[change]
enabled = false  # tests/integration/test_change_alerts.py has them
[kpis.nps]
alert = { below = 0, window = "5m", min_samples = 5, severity = "critical" }
[kpis.open_backlog]
alert = { above = 100000 }
"""
NPS_SCORE = 'window_dimension_segment:cxkpi_nps:score{window="5m", dimension="all", segment="all"}'
NPS_SAMPLES = NPS_SCORE.replace(":score", ":samples")
VARIABLES = {"$window": "1h", "$dimension": "all", "$segment": "all"}


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    receiver = Webhook()
    yield receiver
    receiver.stop()


@pytest.fixture
def alertmanager(tmp_path: Path, webhook: Webhook) -> Iterator[Alertmanager]:
    server = Alertmanager(tmp_path, webhook.url)
    yield server
    server.stop()


def survey_replies(path: Path, kind: str, scores: list[int]) -> Path:
    """Replies at the current time, from one team, written as a producer's JSON Lines."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    path.write_bytes(
        b"".join(
            orjson.dumps(
                {
                    "event_id": str(uuid.uuid4()),
                    "type": kind,
                    "occurred_at": now,
                    "response_id": f"r-{uuid.uuid4()}",
                    "score": score,
                    "channel": "email",
                    "team": "billing",
                }
            )
            + b"\n"
            for score in scores
        )
    )
    return path


def carts_and_tickets(tmp_path: Path, env: dict[str, str]) -> int:
    """A generated log of carts and tickets of about 40 minutes that ended twenty minutes ago
    (no survey replies: those are driven by the test)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=60)
    out = tmp_path / "generated.jsonl"
    cxkpi(
        "generate", "--count", "2500", "--rate", "1", "--seed", "3", "--start",
        start.isoformat(), "--resolution-median", "2m", "--out", str(out), "--quiet", env=env,
    )  # fmt: skip
    lines = [
        line
        for line in out.read_bytes().splitlines()
        if orjson.loads(line)["type"] not in ("nps", "csat", "ces")
    ]
    (tmp_path / "log.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    cxkpi("produce", str(tmp_path / "log.jsonl"), "--quiet", env=env)
    return len(lines)


def users_activity(path: Path) -> Path:
    """Two users of the last 40 minutes: one signs up, reaches value within the activation
    period and uses a feature in a session; the other bounces. So every engagement panel has
    data (stickiness from the 24 h and 30 d windows, activation judged 10 minutes on). Each
    comes back for a page two minutes ago, which takes its partition's stream time past the
    activation period whatever else the partition holds."""
    now = datetime.now(UTC)
    events = []
    for user, kinds in (
        ("u-1", ["signed_up", "session_started", "page_viewed", "value_reached", "feature_used",
                 "session_ended"]),
        ("u-2", ["session_started", "page_viewed", "session_ended"]),
    ):  # fmt: skip
        for i, kind in enumerate([*kinds, "page_viewed"]):
            at = now - timedelta(minutes=40 - i if i < len(kinds) else 2)
            event = {
                "event_id": f"{user}-{i}",
                "type": kind,
                "occurred_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "user_id": user,
                "channel": "web",
                "region": "eu",
            }
            if kind != "signed_up" and kind != "value_reached":
                event["session_id"] = f"s-{user}" if i < len(kinds) else f"s-{user}-back"
            if kind == "feature_used":
                event["feature"] = "export"
            events.append(event)
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def wait_for_values(prometheus: Prometheus, expr: str, expected: list[float]) -> None:
    seen: list[list[float]] = []

    def check() -> bool:
        seen.append(sorted(prometheus.values(expr).values()))
        return seen[-1] == expected

    try:
        wait_until(check, 60, f"{expr} to be {expected}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last values {seen[-1:]}") from None


def produce(path: Path, env: dict[str, str]) -> None:
    cxkpi("produce", str(path), "--quiet", env=env)


def test_nps_alert_fires_and_resolves_through_alertmanager(
    worker_env: dict[str, str],
    alertmanager: Alertmanager,
    webhook: Webhook,
    tmp_path: Path,
) -> None:
    config = tmp_path / "cxkpi.toml"
    config.write_text(CONFIG)
    # Stream time follows the clock after 1 s without events, so the replies' 10 s bucket closes
    # and enters the windows without waiting for a later event.
    # Customer periods of 20 minutes: the customers topic's stream time (about now - 5 m, the
    # grace behind the carts) has customers of the log in both the last period and the one
    # before, so churn, retention and lifetime value have values for the dashboard.
    env = {
        **worker_env,
        "CXKPI_CONFIG": str(config),
        "CXKPI_IDLE_TIMEOUT": "1s",
        "CXKPI_CUSTOMER_PERIOD": "20m",
        "CXKPI_ACTIVATION_PERIOD": "10m",
    }
    rules, dashboard = tmp_path / "rules.yml", tmp_path / "dashboard.json"
    cxkpi("rules", "--out", str(rules), env=env)
    cxkpi("dashboard", "--out", str(dashboard), env=env)
    # The test's users first: a generator's user (who follows the time of day) active later on
    # the same partition would make theirs late.
    produce(users_activity(tmp_path / "activity.jsonl"), env)
    logged = 11 + carts_and_tickets(tmp_path, env)
    worker = Worker(env, tmp_path / "worker.log")
    prometheus = None
    try:
        worker.wait_ready()
        wait_until(lambda: worker.processed() == logged, 120, "the generated log processed")
        prometheus = Prometheus(
            tmp_path, [worker.base.removeprefix("http://")], rules, alertmanager.port
        )
        wait_until(
            lambda: prometheus.query('up{job="cxkpi"} == 1'), 30, "Prometheus to scrape the worker"
        )

        # Three detractors: NPS is -100, but under the 5-reply minimum nothing may fire.
        produce(survey_replies(tmp_path / "few.jsonl", "nps", [0, 1, 2]), env)
        wait_for_values(prometheus, NPS_SAMPLES, [3.0])
        assert list(prometheus.values(NPS_SCORE).values()) == [-100.0]
        for _ in range(4):  # four rule evaluations (the alert's `for` is 2 s) and still quiet
            last = prometheus.evaluations("cxkpi.kpi-alerts")
            wait_until(
                lambda last=last: prometheus.evaluations("cxkpi.kpi-alerts") != last,
                10,
                "a rule evaluation",
            )
            assert not prometheus.query('ALERTS{alertname="NpsTooLow"}')

        # Enough detractors: it fires, and Alertmanager delivers it to the webhook.
        produce(survey_replies(tmp_path / "more.jsonl", "nps", [3, 4, 5]), env)
        produce(survey_replies(tmp_path / "csat.jsonl", "csat", [5, 4, 2]), env)
        produce(survey_replies(tmp_path / "ces.jsonl", "ces", [6, 3, 7]), env)
        firing = wait_until(
            lambda: webhook.alerts("NpsTooLow", "firing"), 90, "NpsTooLow at the webhook"
        )
        labels = firing[0]["labels"]
        assert labels["severity"] == "critical" and labels["window"] == "5m"
        assert "below 0" in firing[0]["annotations"]["summary"]
        assert firing[0]["annotations"]["runbook_url"].endswith("#npstoolow")

        # Every dashboard query returns data from this Prometheus (once the CSAT and CES
        # replies, sent after the NPS ones that fired the alert, are in a closed step).
        document = json.loads(dashboard.read_text())
        empty: list[list[str]] = []

        def all_have_data() -> bool:
            empty.append([])
            for title, expr in panel_queries(document):
                for variable, value in VARIABLES.items():
                    expr = expr.replace(variable, value)
                if not prometheus.query(expr):
                    empty[-1].append(f"{title}: {expr}")
            return not empty[-1]

        try:
            wait_until(all_have_data, 60, "every dashboard query to return data", every=1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n" + "\n".join(empty[-1])) from None
        segments = prometheus.api(
            "label/segment/values",
            **{"match[]": '{__name__=~".+:cxkpi_.+:samples", dimension="team"}'},
        )
        assert "billing" in segments  # the segment variable's choices

        # Promoters lift NPS above 0: the alert resolves at the webhook.
        produce(survey_replies(tmp_path / "promoters.jsonl", "nps", [9, 10] * 10), env)
        wait_until(
            lambda: webhook.alerts("NpsTooLow", "resolved"), 90, "NpsTooLow resolved at the webhook"
        )
        score = list(prometheus.values(NPS_SCORE).values())
        assert score == [100 * (20 - 6) / 26]
    finally:
        if prometheus is not None:
            prometheus.stop()
        worker.stop()
