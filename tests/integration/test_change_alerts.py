"""Change alerts end to end: generated traffic through a real broker and worker, scraped by a
real Prometheus evaluating the generated rules, alerting through a real Alertmanager.

Steady traffic raises no change alert; a drop the generator injects into one segment (NPS of
team billing) reaches Alertmanager with that segment's labels; and every figure of the
snapshot's change section equals what Prometheus computes from the rules.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream.config.kpifile import load_kpi_config
from stream.kpis.change import Watch, watches
from stream.monitoring import change as rules
from tests.monitoring_servers import Alertmanager, Prometheus, Webhook
from tests.servers import Worker, cxkpi, wait_until

pytestmark = pytest.mark.integration

#: Windows of seconds: a 1 m short window, 2 m confirmation, 10 m baselines, held 5 s. The
#: survey KPIs only: carts and tickets start from nothing in a generated log (solves and
#: abandonments come minutes after the entities start), which is no steady traffic.
CONFIG = """
[windows]
sizes = ["1m", "10m"]
step = "10s"
long_step = "10s"
grace = "5m"
[change]
enabled = false
short = "1m"
confirmation = "2m"
baseline = "10m"
min_samples = 20
for = "5s"
[kpis.nps]
change = true
[kpis.csat]
change = true
[kpis.ces]
change = true
[kpis.net_emotion]
change = true
[kpis.review_rating]
change = true
"""
RATE = 40  # events/s: about 54 NPS answers a minute from each team
MINUTES = 20
DROP_AT = 17  # minutes after the start: team billing's NPS falls by 60 points to the end
SEED = 7


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


def generated(tmp_path: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """The log of MINUTES ending now, with the drop, split where the drop starts. The start is
    on a 10 s step and the log has no product activity (whose rhythm follows the time of day),
    so windows hold the same events whenever the test runs."""
    now = datetime.now(UTC)
    start = now.replace(microsecond=0, second=now.second - now.second % 10)
    start -= timedelta(minutes=MINUTES)
    out = tmp_path / "all.jsonl"
    cxkpi(
        "generate", "--count", str(RATE * 60 * MINUTES), "--rate", str(RATE), "--seed",
        str(SEED), "--start", start.isoformat(), "--resolution-median", "2m",
        "--shift", f"nps:-60:team=billing@{DROP_AT}m", "--activity-share", "0",
        "--out", str(out), "--quiet", env=env,
    )  # fmt: skip
    cut = (start + timedelta(minutes=DROP_AT)).isoformat().replace("+00:00", "")
    steady, drop = tmp_path / "steady.jsonl", tmp_path / "drop.jsonl"
    lines = out.read_bytes().splitlines()
    before = [line for line in lines if orjson.loads(line)["occurred_at"] < cut]
    steady.write_bytes(b"\n".join(before) + b"\n")
    drop.write_bytes(b"\n".join(lines[len(before) :]) + b"\n")
    return steady, drop


def change_alerts(prometheus: Prometheus) -> list[dict[str, str]]:
    return [r["metric"] for r in prometheus.query('ALERTS{alert_kind="change"}')]


#: The snapshot's figures of a segment and the records that hold them in Prometheus.
FIELDS = (
    ("value", "short"),
    ("samples", "short_samples"),
    ("baseline", "baseline"),
    ("baseline_samples", "baseline_samples"),
    ("stderr", "stderr"),
    ("z", "z"),
)
CONFIRMATION = (
    ("value", "confirmation"),
    ("samples", "confirmation_samples"),
    ("baseline", "confirmation_baseline"),
    ("baseline_samples", "confirmation_baseline_samples"),
    ("stderr", "confirmation_stderr"),
    ("z", "confirmation_z"),
)


def number(value: Any) -> float | None:
    if value is None:
        return None
    return {"+Inf": math.inf, "-Inf": -math.inf}.get(value, value)


def differences(
    snapshot: dict[str, Any], prometheus: Prometheus, watched: list[Watch]
) -> list[str]:
    """Every change figure of the snapshot against its record (a samples record Prometheus
    lacks is 0: a segment without data in that window has no series there)."""
    wrong = []
    for watch in watched:
        doc = snapshot["change"][watch.kpi.name]
        cells = [("all", "all", doc["overall"])] + [
            (dim, seg, v) for dim in watch.kpi.dimensions for seg, v in doc[dim].items()
        ]
        recorded = {
            operation: prometheus.values(rules.record(watch, operation))
            for fields in (FIELDS, CONFIRMATION)
            for _, operation in fields
        }
        for dim, seg, figures in cells:
            key = (("dimension", dim), ("segment", seg))
            for fields, part in ((FIELDS, figures), (CONFIRMATION, figures["confirmation"])):
                for field, operation in fields:
                    want = number(part[field])
                    got = recorded[operation].get(key, 0.0 if "samples" in operation else None)
                    if want is None or got is None:
                        same = want is got
                    elif math.isinf(want) or field == "z":  # z: a difference over a small number
                        scale = (abs(part["value"] or 0) + abs(part["baseline"] or 0)) / (
                            part["stderr"] or 1
                        )
                        same = want == got or abs(want - got) <= 1e-9 * (1 + scale)
                    else:
                        same = math.isclose(want, got, rel_tol=1e-9, abs_tol=1e-9)
                    if not same:
                        wrong.append(f"{watch.kpi.name} {dim}={seg} {field}: {want} vs {got}")
    return wrong


def test_steady_traffic_raises_none_and_a_drop_in_one_segment_pages_with_its_labels(
    worker_env: dict[str, str], alertmanager: Alertmanager, webhook: Webhook, tmp_path: Path
) -> None:
    config = tmp_path / "cxkpi.toml"
    config.write_text(CONFIG)
    env = {**worker_env, "CXKPI_CONFIG": str(config)}  # idle advancement off: frozen windows
    rule_file = tmp_path / "rules.yml"
    cxkpi("rules", "--out", str(rule_file), env=env)
    steady, drop = generated(tmp_path, env)
    cxkpi("produce", str(steady), "--quiet", env=env)
    worker = Worker(env, tmp_path / "worker.log")
    prometheus = None
    try:
        worker.wait_ready()
        sent = len(steady.read_bytes().splitlines())
        wait_until(lambda: worker.processed() == sent, 120, "the steady log processed")
        prometheus = Prometheus(
            tmp_path, [worker.base.removeprefix("http://")], rule_file, alertmanager.port
        )
        watched = watches(load_kpi_config(config).changes())
        nps = next(w for w in watched if w.kpi.name == "nps")
        z = rules.record(nps, "z")
        wait_until(lambda: len(prometheus.values(z)) >= 11, 60, "z of NPS overall and per segment")
        # Steady: z is computed for every segment, and no change alert is even pending.
        for _ in range(8):
            last = prometheus.evaluations("cxkpi.change-alerts")
            wait_until(
                lambda last=last: prometheus.evaluations("cxkpi.change-alerts") != last,
                10,
                "a rule evaluation",
            )
            assert change_alerts(prometheus) == []
        assert all(abs(v) < 3 for v in prometheus.values(z).values())

        # The drop: team billing's alert reaches Alertmanager with the segment's labels.
        cxkpi("produce", str(drop), "--quiet", env=env)
        total = sent + len(drop.read_bytes().splitlines())
        wait_until(lambda: worker.processed() == total, 120, "the whole log processed")
        try:
            firing = wait_until(
                lambda: webhook.alerts(rules.alert_name(nps), "firing"),
                90,
                "NpsChanged at the webhook",
            )
        except AssertionError as exc:  # say what the rules saw
            seen = {
                part: prometheus.values(rules.record(nps, part))
                for part in ("z", "confirmation_z", "short_samples", "baseline_samples")
            }
            raise AssertionError(f"{exc}\n{seen}\n{change_alerts(prometheus)}") from None
        labels = firing[0]["labels"]
        assert (labels["dimension"], labels["segment"]) == ("team", "billing")
        assert (labels["kpi"], labels["alert_kind"]) == ("nps", "change")
        summary = firing[0]["annotations"]["summary"]
        assert summary.startswith("NPS of team billing over 1m is ") and "z = -" in summary
        segments = {(a["dimension"], a["segment"]) for a in change_alerts(prometheus)}
        assert ("team", "billing") in segments
        assert not {s for s in segments if s[0] == "team"} - {("team", "billing")}

        # Every figure of the snapshot's change section is what Prometheus computes.
        seen: list[list[str]] = []

        def same() -> bool:
            seen.append(differences(worker.kpis() or {}, prometheus, watched))
            return not seen[-1]

        try:
            wait_until(same, 30, "the snapshot's change figures to equal Prometheus'")
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n" + "\n".join(seen[-1][:30])) from None
        document = worker.kpis() or {}
        billing = document["change"]["nps"]["team"]["billing"]
        assert billing["beyond"] and number(billing["z"]) <= -3
        compared = [
            cell["z"]
            for kpi in document["change"].values()
            for cell in [
                kpi["overall"],
                *(v for d in ("channel", "team") for v in kpi.get(d, {}).values()),
            ]
            if cell["z"] is not None
        ]
        assert len(compared) >= 30  # the figures compared hold numbers, not only nulls
    finally:
        if prometheus is not None:
            prometheus.stop()
        worker.stop()
