"""Two workers scraped by a real Prometheus evaluating the committed rules: the recorded fleet-wide
KPIs equal the offline computation, and stay equal (or are withheld, never wrong) while one worker
stops and its partitions move to the other."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest

from stream.kpis.catalog import CATALOG
from stream.monitoring import rules
from tests.integration.test_pipeline import (
    expected_for,
    expected_metric_samples,
    generate,
    kpi_cells,
)
from tests.monitoring_servers import Prometheus
from tests.servers import ROOT, Broker, Worker, cxkpi, wait_until

pytestmark = pytest.mark.integration
COMMITTED_RULES = ROOT / "ops/prometheus/rules/cxkpi.rules.yml"
EVENTS = 3000
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def histogram_quantile(q: float, buckets: dict[str, int]) -> float | None:
    """Prometheus' histogram_quantile over cumulative buckets {upper bound: count}."""
    bounds = sorted(((math.inf if le == "+Inf" else float(le)), n) for le, n in buckets.items())
    total = bounds[-1][1]
    if total == 0:
        return None
    rank = q * total
    lower, below = 0.0, 0
    for upper, count in bounds:
        if count >= rank:
            if upper == math.inf:
                return lower
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return None


def expected_records(expected: dict[str, Any]) -> Series:
    """Every recorded series the rules must produce for the reference snapshot."""
    out: Series = {}
    components = expected_metric_samples(expected)
    kpis = {k.name: k for k in CATALOG}
    for (name, labels), value in components.items():
        if name == "events_by_topic" or name.endswith(("_gsum", "_bucket")):
            continue  # not recorded (durations record their count, quantiles and mean)
        if name == rules.OLDEST_AGE:  # the oldest ticket: the largest over workers
            out[rules.values(kpis["backlog_age"])[0].record, tuple(sorted(labels))] = value
            continue
        kpi = next(k for k in kpis.values() if name.startswith(f"cxkpi_{k.name}_"))
        out[rules.summed(kpi, name), tuple(sorted(labels))] = value
    for dimension, segment, v in kpi_cells(expected["live"]["backlog_age"]):
        labels = {"dimension": dimension, "segment": segment}
        if v["tickets"]:
            mean = rules.values(kpis["backlog_age"])[1].record
            out[mean, tuple(sorted(labels.items()))] = v["mean_seconds"]
        for le, n in v["buckets"].items():
            bucket = {**labels, "le": le if le == "+Inf" else f"{le}.0"}
            out[
                f"{rules.LIVE_LEVEL}:{rules.AGE_HISTOGRAM}_bucket:sum",
                tuple(sorted(bucket.items())),
            ] = n
    out.update(_customer_records(expected["live"]["customers"]["overall"]))
    ratio = rules.values(kpis["stickiness"])[0].record  # DAU / MAU, of now
    sticky = expected["live"].get("stickiness")
    for dimension, segment, v in kpi_cells(sticky) if sticky else []:
        if v["ratio"] is not None:
            out[ratio, tuple(sorted({"dimension": dimension, "segment": segment}.items()))] = v[
                "ratio"
            ]
    out.update(_change_records(expected["change"]))
    for window, by_kpi in [*expected["windows"].items(), *expected["change_windows"].items()]:
        for name, doc in by_kpi.items():
            if name == "complete":
                continue
            kpi = kpis[name]
            for dimension, segment, v in kpi_cells(doc):
                labels = {"window": window, "dimension": dimension, "segment": segment}
                for record, value, extra in _values(kpi, v):
                    if value is not None:
                        out[record, tuple(sorted({**labels, **extra}.items()))] = value
    return out


def _change_records(section: dict[str, Any]) -> Series:
    """The change records of the reference's change section (the committed rules' change
    alerts are the reference's defaults): values, samples (where any), standard errors, z."""
    out: Series = {}
    fields = {
        "": ("value", "samples", "baseline", "baseline_samples", "stderr", "z"),
        "confirmation": ("value", "samples", "baseline", "baseline_samples", "stderr", "z"),
    }
    names = {
        "": ("short", "short_samples", "baseline", "baseline_samples", "stderr", "z"),
        "confirmation": (
            "confirmation",
            "confirmation_samples",
            "confirmation_baseline",
            "confirmation_baseline_samples",
            "confirmation_stderr",
            "confirmation_z",
        ),
    }
    for kpi, doc in section.items():
        cells = [("all", "all", doc["overall"])] + [
            (dim, seg, v)
            for dim, by_segment in doc.items()
            if dim not in ("settings", "complete", "overall")
            for seg, v in by_segment.items()
        ]
        for dim, seg, figures in cells:
            labels = (("dimension", dim), ("segment", seg))
            for part, keys in fields.items():
                values = figures[part] if part else figures
                for key, operation in zip(keys, names[part], strict=True):
                    value = values[key]
                    if value is None or (key.endswith("samples") and value == 0):
                        continue
                    value = {"+Inf": math.inf, "-Inf": -math.inf}.get(value, value)
                    out[f"dimension_segment:cxkpi_{kpi}_change:{operation}", labels] = value
    return out


def _customer_records(v: dict[str, Any]) -> Series:
    """The recorded customer KPIs of the reference's live.customers.overall (each record is
    named after its key there); none where the reference has no value."""
    out: Series = {}
    labels = {"dimension": "all", "segment": "all"}
    for series in rules.values(next(k for k in CATALOG if k.kind.name == "customers")):
        key = series.record.rsplit(":", 1)[1]
        cells = (
            {c: m[key] for c, m in v[key].items()} if key == "lifetime_value" else {None: v[key]}
        )
        for currency, value in cells.items():
            extra = {"currency": currency} if currency else {}
            if value is not None:
                out[series.record, tuple(sorted({**labels, **extra}.items()))] = value
    return out


def _values(kpi: Any, v: dict[str, Any]) -> list[tuple[str, float | None, dict[str, str]]]:
    """(recording rule, expected value, extra labels) of one KPI cell of the reference."""
    series = rules.values(kpi)
    match kpi.kind.name:
        case "duration":
            p90, p50, mean = (s.record for s in series)
            buckets = {le if le == "+Inf" else f"{le}.0": n for le, n in v["buckets"].items()}
            return [
                (rules.samples(kpi), v["count"], {}),
                (p90, histogram_quantile(0.9, buckets), {}),
                (p50, histogram_quantile(0.5, buckets), {}),
                (mean, v["mean_seconds"], {}),
            ]
        case "money":
            return [(rules.samples(kpi), m["orders"], {"currency": c}) for c, m in v.items()] + [
                (series[0].record, m["average"], {"currency": c}) for c, m in v.items()
            ]
        case "sentiment":
            net, mean, negative_ratio = (s.record for s in series)
            return [
                (rules.samples(kpi), v["scored"], {}),
                (net, v["net"], {}),
                (mean, v["mean"], {}),
                (negative_ratio, v["negative_ratio"], {}),
            ]
        case "shares":  # one series per class, under the kind's label
            return [(rules.samples(kpi), v[kpi.parts[0][0]], {})] + [
                (series[0].record, share, {kpi.kind.label: name})
                for name, share in v["shares"].items()
            ]
        case "mean":  # CES, review rating: named by their parts and share key
            return [
                (rules.samples(kpi), v[kpi.parts[0][0]], {}),
                (series[0].record, v["mean"], {}),
                (series[1].record, v[kpi.kind.share_key], {}),
            ]
        case "count":  # active and new users: the summed count is the value
            count = v[kpi.parts[0][0]]
            return [(rules.samples(kpi), count, {}), (series[0].record, count, {})]
        case "net":  # NPS, net emotion: over the kind's total
            count = v[kpi.kind.total]
            return [(rules.samples(kpi), count, {}), (series[0].record, v[kpi.value], {})]
        case _:
            denominator = {  # the samples: both parts, or the second one
                "share": None,
                "fraction": kpi.parts[1][0],
                "adoption": kpi.parts[1][0],
                "average": kpi.parts[1][0],
            }
            key = denominator[kpi.kind.name]
            count = sum(v[p] for p, _ in kpi.parts) if key is None else v[key]
            return [(rules.samples(kpi), count, {}), (series[0].record, v[kpi.value], {})]


def recorded(prometheus: Prometheus, names: set[str]) -> Series:
    out: Series = {}
    for name in names:
        for labels, value in prometheus.values(name).items():
            out[name, labels] = value
    return out


def differences(actual: Series, expected: Series) -> list[str]:
    wrong = [
        f"{name}{dict(labels)}: {actual.get((name, labels))} != {value}"
        for (name, labels), value in expected.items()
        if (name, labels) not in actual
        or not math.isclose(actual[name, labels], value, rel_tol=1e-9, abs_tol=1e-9)
    ]
    wrong += [f"unexpected {name}{dict(labels)}" for name, labels in actual.keys() - expected]
    return wrong


def test_recording_rules_equal_the_offline_computation_through_a_move(
    broker: Broker, worker_env: dict[str, str], tmp_path: Path
) -> None:
    lines = generate(tmp_path / "events.jsonl", worker_env, EVENTS, seed=11)
    cxkpi("produce", str(tmp_path / "events.jsonl"), "--quiet", env=worker_env)
    workers = [Worker(worker_env, tmp_path / "w1.log"), Worker(worker_env, tmp_path / "w2.log")]
    prometheus = None
    try:
        for worker in workers:
            worker.wait_ready()
        wait_until(lambda: workers[0].processed() == len(lines), 180, "the log processed")
        expected = expected_records(expected_for(broker, len(lines), change_windows=True))
        names = {name for name, _ in expected}
        prometheus = Prometheus(
            tmp_path, [w.base.removeprefix("http://") for w in workers], COMMITTED_RULES
        )
        seen: list[list[str]] = []

        def exact() -> bool:
            actual = {  # a segment only in another window of a change alert: samples 0 there
                k: v
                for k, v in recorded(prometheus, names).items()
                if not (k[0].endswith("_samples") and "_change:" in k[0] and v == 0)
            }
            seen.append(differences(actual, expected))
            return not seen[-1]

        try:
            wait_until(exact, 60, "the recording rules to equal the reference")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n" + "\n".join(seen[-1][:30])) from None
        # from here on every recorded value must stay exact or be withheld (before, the workers
        # were still catching up: smaller sums, rightly not withheld)
        exact_at = time.time()
        owners = prometheus.values("count by (instance) (cxkpi_events_total)")
        assert len(owners) == 2, "both workers own partitions"

        # The second worker stops; the first takes its partitions over.
        # every partition of every topic the workers consume, the customers topic's too
        partitions = sum(prometheus.values("max by (topic) (cxkpi_topic_partitions)").values())
        workers[1].stop()
        wait_until(
            lambda: (
                prometheus.values('sum(cxkpi_partitions_assigned{job="cxkpi"})')
                and list(prometheus.values("sum(cxkpi_partitions_assigned)").values())
                == [partitions]
                and len(prometheus.values("count by (instance) (cxkpi_partitions_assigned)")) == 1
            ),
            120,
            f"one worker to own all {partitions:g} partitions",
        )
        seen.clear()
        wait_until(exact, 60, "the recording rules to equal the reference after the move")

        # Every value recorded during the move was exact or withheld: no spike, no dip.
        for name in ("window_dimension_segment:cxkpi_nps_responses:sum",
                     "window_dimension_segment:cxkpi_cart_abandonment:ratio",
                     "window_dimension_segment:cxkpi_resolution_time_seconds:p90",
                     "dimension_segment:cxkpi_open_backlog_tickets:sum"):  # fmt: skip
            result = prometheus.api(
                "query_range",
                query=name,
                start=str(exact_at),
                end=str(time.time()),
                step="1",
            )["result"]
            assert result, f"{name} recorded nothing around the move"
            for series in result:
                labels = tuple(
                    sorted((k, v) for k, v in series["metric"].items() if k != "__name__")
                )
                want = expected[name, labels]
                wrong = [
                    float(v)
                    for _, v in series["values"]
                    if not math.isclose(float(v), want, rel_tol=1e-9)
                ]
                assert not wrong, (
                    f"{name}{dict(labels)} was {wrong[:5]} during the move, not {want}"
                )
    finally:
        if prometheus is not None:
            prometheus.stop()
        for worker in workers:
            worker.stop()
