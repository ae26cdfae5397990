"""The generated Prometheus rules: current with cxkpi.toml, valid, and right under promtool.

`promtool test rules` evaluates the committed rule file on synthetic series of two workers, so
each recording rule's arithmetic and each alert's threshold, `for` and minimum-sample guard are
checked by Prometheus' own engine (Debian's `prometheus` package provides promtool).

What each promtool test evaluates (`run_promtool_tests`): the committed file holds about 590
rules, all evaluated at every 1-minute step, about a second per test, while a test's assertions
read a few of them. So each test runs on a copy of the file that keeps, verbatim, in their
groups and order (the same evaluation order: a rule reading one later in its group still sees
the previous step's value), the rules that can matter to it:

- every alert its `alert_rule_test` names, and every rule recording a name that those alerts
  (expression, labels, annotations: a template may `query`) or its `promql_expr_test`
  expressions name, transitively: everything the assertions read, computed as in the whole file;
- every rule that can have a sample, or an evaluation error (which fails promtool), at some
  step: one that names an input series or the record of such a rule, or that can make a series
  from nothing (`absent`, `vector`, `scalar`, no selector), with what it reads. The right
  operand of `and on () <selector>` does not count: `a and b` is empty when `a` is.

A rule left out thus selects only series absent at every step: in the whole file it is empty
throughout, writes nothing that a kept rule or an assertion reads, and cannot fail, so the
outcome is the whole file's. A test or rule that matches on `__name__` keeps every rule, and
one reading `ALERTS` every alert. One test evaluates the whole file unfiltered, with every KPI's
series at once (`test_the_whole_file_evaluates_every_kpi_at_once`); `promtool check rules`
checks all of it; and `CXKPI_RULES_UNFILTERED=1` runs every test on the whole file, as before.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.config.kpifile import DEFAULT_CONFIG_PATH, Alert, load_kpi_config
from stream.kpis.catalog import CATALOG, Kpi
from stream.monitoring import health, rules
from stream.monitoring.rulefile import render_rules
from stream.state.measures import DURATION_BOUNDS_S
from stream.state.windows import window_name

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "ops/prometheus/rules/cxkpi.rules.yml"
CONFIG = load_kpi_config(DEFAULT_CONFIG_PATH)
TOPICS = sorted({k.topic for k in CATALOG})
PARTITIONS = 4
WORKERS = ("w1", "w2")  # w1 owns partitions 0 and 1, w2 owns 2 and 3
BUCKETS = (*(f"{float(b)}" for b in DURATION_BOUNDS_S), "+Inf")


def promtool(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: install Debian's prometheus package (make setup does)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)


def test_committed_rules_are_generated_from_the_config() -> None:
    assert RULES.read_text() == render_rules(CONFIG, DEFAULT_CONFIG_PATH.name), (
        "ops/prometheus/rules/cxkpi.rules.yml is stale: run `make monitoring`"
    )


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    groups = rule_groups()
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    for alert in alerts:
        assert alert["for"] and alert["labels"]["severity"] in ("critical", "warning", "info")
        assert {"summary", "description", "runbook_url"} <= set(alert["annotations"])
    configured = {k for k, s in CONFIG.kpis.items() if s.alert is not None}
    thresholds = [a for a in alerts if a["labels"].get("alert_kind") != "change"]
    assert {a["labels"].get("kpi") for a in thresholds} - {None} == configured
    changes = {a["labels"]["kpi"] for a in alerts if a["labels"].get("alert_kind") == "change"}
    assert changes == set(CONFIG.changes())
    names = [r["record"] for g in groups for r in g["rules"] if "record" in r]
    assert all(len(name.split(":")) == 3 for name in names), "level:metric:operations"


# -- synthetic workers -------------------------------------------------------------------------


def labels(**values: str) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in values.items()) + "}"


def coverage(owners: dict[int, list[str]]) -> list[dict[str, str]]:
    """The per-partition series each worker exports for the partitions it owns."""
    series = []
    for topic in TOPICS:
        for worker in WORKERS:
            series.append(
                {
                    "series": "cxkpi_topic_partitions" + labels(instance=worker, topic=topic),
                    "values": f"{PARTITIONS}x30",
                }
            )
        for partition, workers in owners.items():
            for worker in workers:
                name = "cxkpi_events_total" + labels(
                    instance=worker, topic=topic, partition=str(partition), outcome="applied"
                )
                series.append({"series": name, "values": "100+10x30"})
    return series


EXACTLY_ONCE = {0: ["w1"], 1: ["w1"], 2: ["w2"], 3: ["w2"]}


def kpi_series(kpi: Kpi, per_worker: dict[str, float], window: str = "1h") -> list[dict[str, str]]:
    """Component series of a KPI per worker. per_worker: component -> value of each worker
    (buckets for durations: samples in the bucket given by the key)."""
    out = []
    for worker in WORKERS:
        base: dict[str, str] = {"instance": worker, "dimension": "all", "segment": "all"}
        if not kpi.is_live:
            base["window"] = window
        if kpi.kind.name == "money":
            base["currency"] = "EUR"
        if kpi.kind.name == "duration":
            cumulative = 0.0
            for le in BUCKETS:
                cumulative += per_worker.get(le, 0)
                out.append(
                    {
                        "series": f"cxkpi_{kpi.name}_seconds_bucket" + labels(**base, le=le),
                        "values": f"{cumulative:g}x30",
                    }
                )
            for suffix in ("gcount", "gsum"):
                out.append(
                    {
                        "series": f"cxkpi_{kpi.name}_seconds_{suffix}" + labels(**base),
                        "values": f"{per_worker[suffix]:g}x30",
                    }
                )
            continue
        if kpi.kind.name == "age":  # the oldest ticket, and the histogram's count and sum
            names = {
                "oldest": rules.OLDEST_AGE,
                **{s: f"{rules.AGE_HISTOGRAM}_{s}" for s in ("gcount", "gsum")},
            }
            for component, value in per_worker.items():
                out.append({"series": names[component] + labels(**base), "values": f"{value:g}x30"})
            continue
        for component, value in per_worker.items():
            money = kpi.kind.name == "customers" and component in rules.CUSTOMER_MONEY
            out.append(
                {
                    "series": f"cxkpi_{kpi.name}_{component}"
                    + labels(**base, **({"currency": "EUR"} if money else {})),
                    "values": f"{value:g}x30",
                }
            )
    return out


def run_promtool_tests(tmp_path: Path, tests: list[dict[str, Any]], whole: bool = False) -> None:
    """promtool's unit tests, on the rules that can matter to them (the module's text), or on
    the whole committed file (`whole`, or CXKPI_RULES_UNFILTERED=1)."""
    rule_file = RULES
    if not whole and not os.environ.get("CXKPI_RULES_UNFILTERED"):
        rule_file = tmp_path / "cxkpi.rules.yml"
        rule_file.write_text(dump({"groups": rules_for(tests)}))
    path = tmp_path / "cxkpi.test.yml"
    path.write_text(
        dump({"rule_files": [str(rule_file)], "evaluation_interval": "1m", "tests": tests})
    )
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


#: libyaml's loader and dumper where PyYAML has them: the same documents, in a tenth of the time
#: (a test writes up to a thousand input series)
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=DUMPER, sort_keys=False)


@functools.cache
def rule_groups() -> list[dict[str, Any]]:
    """The committed file's groups, parsed once per process (read them, never change them)."""
    return yaml.load(RULES.read_text(), Loader=LOADER)["groups"]


NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
#: `and on () <selector>`: the right side of `and` filters the left, never adds a sample.
AND_FILTER = re.compile(r"\band\s+on\s*\(\s*\)\s*[A-Za-z_:][A-Za-z0-9_:]*(\{[^}]*\})?")
#: What can make a sample with no series present.
FROM_NOTHING = re.compile(r"\b(absent|absent_over_time|vector|scalar)\s*\(")
#: Not a selector: strings, matchers, ranges, numbers and durations, label lists, functions.
NOT_SELECTORS = re.compile(
    r'"(\\.|[^"])*"|\'(\\.|[^\'])*\'|\{[^}]*\}|\[[^\]]*\]|(?<![A-Za-z0-9_:])\d[\w.]*'
    r"|\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)|[A-Za-z_:][A-Za-z0-9_:]*\s*\("
)
KEYWORDS = {
    *("and", "or", "unless", "atan2", "bool", "offset", "by", "without", "on", "ignoring"),
    *("group_left", "group_right", "inf", "nan", "sum", "min", "max", "avg", "group", "count"),
    *("stddev", "stdvar", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"),
}


def strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*strings(k), *strings(v))]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return [node] if isinstance(node, str) else []


def names(node: Any) -> set[str]:
    """Every metric-name-like word in a rule (expression, labels, annotations: a template may
    `query`) or in expressions: more than the names read, never fewer."""
    return {n for text in strings(node) for n in NAME.findall(text)}


def from_nothing(expr: str) -> bool:
    """Whether the expression can have a sample with no series present."""
    selectors = {n for n in NAME.findall(NOT_SELECTORS.sub(" ", expr)) if n.lower() not in KEYWORDS}
    return FROM_NOTHING.search(expr) is not None or not selectors


@dataclass(frozen=True)
class Rule:
    """A committed rule, as the filter reads it."""

    group: int
    index: int
    produces: frozenset[str]  # its record, or its alert name and the ALERTS series
    reads: frozenset[str]  # names(rule): what it may depend on
    sources: frozenset[str]  # names whose samples can give it one (its `and on ()` filters out)
    always: bool  # can have a sample with no series present, or matches on __name__


@functools.cache
def indexed_rules() -> tuple[Rule, ...]:
    return tuple(
        Rule(
            group=g,
            index=i,
            produces=frozenset(
                [r["record"]] if "record" in r else [r["alert"], "ALERTS", "ALERTS_FOR_STATE"]
            ),
            reads=frozenset(names(r)),
            sources=frozenset(names(AND_FILTER.sub(" ", r["expr"]))),
            always=from_nothing(r["expr"]) or "__name__" in names(r),
        )
        for g, group in enumerate(rule_groups())
        for i, r in enumerate(group["rules"])
    )


def rules_for(tests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The committed groups with only the rules that can matter to these promtool tests (the
    module's text): verbatim, in their groups and order."""
    read = names([a["alertname"] for t in tests for a in t.get("alert_rule_test", [])])
    read |= names([e["expr"] for t in tests for e in t.get("promql_expr_test", [])])
    present = {s["series"].split("{")[0].strip() for t in tests for s in t["input_series"]}
    everything = "__name__" in names(tests) or "" in present
    kept: set[tuple[int, int]] = set()
    changed = True
    while changed:
        changed = False
        for r in indexed_rules():
            if (r.group, r.index) not in kept and (
                everything or r.always or r.produces & read or r.sources & present
            ):
                kept.add((r.group, r.index))
                read |= r.reads
                present |= r.produces
                changed = True
    return [
        {**group, "rules": [r for i, r in enumerate(group["rules"]) if (g, i) in kept]}
        for g, group in enumerate(rule_groups())
    ]


def kpi(name: str) -> Kpi:
    return next(k for k in CATALOG if k.name == name)


#: Customer components of each of two workers
CUSTOMERS = {
    "active": 4,
    "previous": 5,
    "retained": 3,
    "repeat_customers": 1,
    "orders": 6,
    "anonymous_orders": 2,
    "priced_orders": 5,
    "amount": 100,
}
LOYAL = {**CUSTOMERS, "active": 5, "retained": 5, "orders": 5, "amount": 50}


# Two workers' components and the fleet value computed by hand: (sum over workers) then divide.
RECORDING_CASES: list[tuple[str, dict[str, float], str, float]] = [
    ("cart_abandonment", {"abandoned": 30, "converted": 10}, "ratio", 60 / 80),
    ("checkout_abandonment", {"abandoned": 5, "converted": 15}, "ratio", 10 / 40),
    ("conversion", {"converted": 10, "created": 40}, "ratio", 20 / 80),
    ("upsell", {"upsold": 3, "orders": 12}, "ratio", 6 / 24),
    ("first_contact_resolution", {"first_contact": 7, "solves": 10}, "ratio", 14 / 20),
    ("reopen_rate", {"reopens": 1, "solves": 10}, "ratio", 2 / 20),
    ("csat", {"satisfied": 8, "responses": 10}, "score", 100 * 16 / 20),
    (
        "nps",
        {"promoters": 6, "passives": 2, "detractors": 2, "responses": 10},
        "score",
        100 * (12 - 4) / 20,
    ),
    ("ces", {"responses": 10, "score_sum": 55, "easy": 7}, "mean", 110 / 20),
    ("ces", {"responses": 10, "score_sum": 55, "easy": 7}, "easy_ratio", 14 / 20),
    ("average_order_value", {"orders": 4, "amount": 100}, "average", 200 / 8),
    # 10 samples per worker, all in (60, 300]: p90 = 60 + 0.9 * 240 (linear in the bucket)
    ("resolution_time", {"300.0": 10, "gcount": 10, "gsum": 1500}, "p90", 60 + 0.9 * 240),
    ("resolution_time", {"300.0": 10, "gcount": 10, "gsum": 1500}, "mean", 150),
    (
        "first_response_time",
        {"60.0": 4, "300.0": 6, "gcount": 10, "gsum": 900},
        "p50",
        60 + 240 / 6,
    ),
    ("open_backlog", {"tickets": 21}, "sum", 42),
    # the oldest ticket is the largest over workers; the mean age is summed, then divided
    ("backlog_age", {"oldest": 7200, "gcount": 4, "gsum": 4000}, "max", 7200),
    ("backlog_age", {"oldest": 7200, "gcount": 4, "gsum": 4000}, "mean", 1000),
    # fleet: 8 active, 10 previous, 6 retained, 2 repeat, 12 orders, 10 priced orders of 200 EUR
    ("customers", CUSTOMERS, "churn_ratio", 4 / 10),
    ("customers", CUSTOMERS, "retention_ratio", 6 / 10),
    ("customers", CUSTOMERS, "repeat_purchase_ratio", 2 / 8),
    ("customers", CUSTOMERS, "purchase_frequency", 12 / 8),
    ("customers", CUSTOMERS, "expected_lifetime_periods", 10 / 4),
    ("customers", CUSTOMERS, "lifetime_value", 200 / 10 * 12 / 8 * 10 / 4),
    # nobody churned: the expected lifetime is the cap
    ("customers", LOYAL, "expected_lifetime_periods", rules.MAX_LIFETIME_PERIODS),
    ("customers", LOYAL, "lifetime_value", 100 / 10 * 1 * rules.MAX_LIFETIME_PERIODS),
    # engagement: distinct users add up over workers (a user lives in one partition)
    ("active_users", {"users": 40}, "sum", 80),
    ("new_users", {"users": 3}, "sum", 6),
    ("bounce_rate", {"bounced": 3, "sessions": 12}, "ratio", 6 / 24),
    ("pages_per_session", {"pages": 30, "sessions": 12}, "mean", 60 / 24),
    ("activation_rate", {"activated": 2, "signups": 5}, "ratio", 4 / 10),
    ("feature_adoption", {"users": 5, "active": 40}, "ratio", 10 / 80),
    ("stickiness", {"daily": 10, "monthly": 40}, "ratio", 20 / 80),
    ("session_duration", {"300.0": 10, "gcount": 10, "gsum": 1500}, "mean", 150),
]


def value_record(k: Kpi, operation: str) -> str:
    return next(s.record for s in rules.values(k) if s.record.endswith(":" + operation))


@pytest.mark.parametrize(("name", "components", "operation", "expected"), RECORDING_CASES)
def test_recording_rules_sum_over_workers_then_divide(
    tmp_path: Path, name: str, components: dict[str, float], operation: str, expected: float
) -> None:
    k = kpi(name)
    record = value_record(k, operation)
    at = {"eval_time": "5m"}
    run_promtool_tests(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": coverage(EXACTLY_ONCE) + kpi_series(k, components),
                "promql_expr_test": [recorded(k, operation, expected)],
            },
            {  # a partition owned twice (a rebalance between scrapes): withheld, no spike
                "interval": "1m",
                "input_series": coverage({**EXACTLY_ONCE, 1: ["w1", "w2"]})
                + kpi_series(k, components),
                "promql_expr_test": [{**at, "expr": record, "exp_samples": []}],
            },
            {  # a partition owned by nobody (a worker died, not yet moved): withheld, no dip
                "interval": "1m",
                "input_series": coverage({0: ["w1"], 1: ["w1"], 2: ["w2"]})
                + kpi_series(k, components),
                "promql_expr_test": [{**at, "expr": record, "exp_samples": []}],
            },
        ],
    )


def recorded(k: Kpi, operation: str, expected: float) -> dict[str, Any]:
    """A promql_expr_test: the fleet value `operation` of `k` over 1h is `expected` at 5m."""
    record = value_record(k, operation)
    result_labels = {"dimension": "all", "segment": "all"}
    if not k.is_live:
        result_labels = {"window": "1h", **result_labels}
    if k.kind.name == "money" or operation == "lifetime_value":
        result_labels["currency"] = "EUR"
    return {
        "eval_time": "5m",
        "expr": record,
        "exp_samples": [{"labels": record + labels(**result_labels), "value": expected}],
    }


def test_the_whole_file_evaluates_every_kpi_at_once(tmp_path: Path) -> None:
    """The committed file unfiltered (the other promtool tests run only the rules that can
    matter to them), with the components of every KPI above present at once: each value is the
    one computed by hand, so no rule reads another KPI's series, and no rule of the file fails
    to evaluate; all withheld when a partition is owned twice."""
    rounds: list[dict[str, tuple[dict[str, float], list[tuple[str, float]]]]] = []
    for name, components, operation, expected in RECORDING_CASES:
        # a KPI's second set of components goes into a test of its own
        same = [r for r in rounds if r.get(name, (components,))[0] == components]
        if not same:
            rounds.append({})
            same = rounds[-1:]
        same[0].setdefault(name, (components, []))[1].append((operation, expected))
    tests = []
    for kpis in rounds:
        series = [s for name, (c, _) in kpis.items() for s in kpi_series(kpi(name), c)]
        checks = [recorded(kpi(n), o, v) for n, (_, ops) in kpis.items() for o, v in ops]
        tests.append(
            {
                "interval": "1m",
                "input_series": coverage(EXACTLY_ONCE) + series,
                "promql_expr_test": checks,
            }
        )
        tests.append(
            {
                "interval": "1m",
                "input_series": coverage({**EXACTLY_ONCE, 1: ["w1", "w2"]}) + series,
                "promql_expr_test": [{**c, "exp_samples": []} for c in checks],
            }
        )
    assert len(rounds) == 2 and sum(len(t["promql_expr_test"]) for t in tests) == 2 * len(
        RECORDING_CASES
    )
    run_promtool_tests(tmp_path, tests, whole=True)


def test_customer_kpis_have_no_value_without_previous_or_active_customers(
    tmp_path: Path,
) -> None:
    k = kpi("customers")
    first_period = {**CUSTOMERS, "previous": 0, "retained": 0}
    no_orders_now = {**CUSTOMERS, "active": 0, "repeat_customers": 0, "orders": 0}
    absent = [
        (first_period, ("churn_ratio", "retention_ratio", "expected_lifetime_periods")),
        (no_orders_now, ("repeat_purchase_ratio", "purchase_frequency")),
    ]
    run_promtool_tests(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": coverage(EXACTLY_ONCE) + kpi_series(k, components),
                "promql_expr_test": [
                    {"eval_time": "5m", "expr": value_record(k, operation), "exp_samples": []}
                    for operation in (*operations, "lifetime_value")
                ],
            }
            for components, operations in absent
        ],
    )


# -- alerts ------------------------------------------------------------------------------------


def components_for(k: Kpi, alert: Alert, bad: bool, samples: int) -> tuple[dict[str, float], float]:
    """Per-worker components with `samples` samples each whose fleet value is on the bad (or
    good) side of the alert, and that fleet value."""
    n = samples
    high = bad == (alert.kind != "below")  # the value should be high
    match k.kind.name:
        case "share":
            return {"abandoned": n if high else 0, "converted": 0 if high else n}, float(high)
        case "fraction" | "adoption" | "average" | "stickiness":
            first, second = (p for p, _ in k.parts)
            return {first: n if high else 0, second: n}, high * k.kind.scale
        case "net":
            top, middle, bottom = (p for p, _ in k.parts)
            return {
                top: n if high else 0,
                middle: 0,
                bottom: 0 if high else n,
                k.kind.total: n,
            }, (100 if high else -100)
        case "sentiment":  # every text positive (net +100) or negative (net -100)
            return {
                "positive": n if high else 0,
                "neutral": 0,
                "negative": 0 if high else n,
                "unscored": 0,
                "score_sum": n if high else -n,
                "scored": n,
            }, (100 if high else -100)
        case "mean":
            responses, score_sum, good, squares = (p for p, _ in k.parts)
            most = 7 if k.kind.scale == "1-7" else 5
            score = most if high else 1
            return {responses: n, score_sum: score * n, good: 0, squares: score**2 * n}, (
                most if high else 1
            )
        case "duration":  # all in +Inf: p90 is the highest finite bound; all <= 60 s: 54 s
            value = DURATION_BOUNDS_S[-1] if high else 54
            return {("+Inf" if high else "60.0"): n, "gcount": n, "gsum": n}, value
        case "money":
            average = alert.threshold * 2 + 1 if high else 0
            return {"orders": n, "amount": average * n}, average
        case "age":
            oldest = alert.threshold * 2 if high else alert.threshold / 2
            return {"oldest": oldest}, oldest
        case "customers":  # every previous customer left, or none did
            return {**CUSTOMERS, "previous": n, "retained": 0 if high else n}, float(high)
        case _:
            return {"tickets": alert.threshold if high else 0}, 2 * alert.threshold * high


def humanize_duration(seconds: float) -> str:
    """Prometheus' humanizeDuration for whole seconds of a minute or more."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m {secs}s"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s"


def rendered(
    annotations: dict[str, str], value: float, labels: dict[str, str] | None = None
) -> dict[str, str]:
    """The alert's annotations as Prometheus renders them for this value and these labels."""
    text = {
        '{{ $value | printf "%.4g" }}': f"{value:.4g}",
        "{{ $value | humanizeDuration }}": humanize_duration(value),
        "{{ $value | humanizePercentage }}": f"{value * 100:.4g}%",
        "{{ $value }}": f"{value:g}",
        **{f"{{{{ $labels.{k} }}}}": v for k, v in (labels or {}).items()},
    }
    out = {}
    for key, template in annotations.items():
        for placeholder, shown in text.items():
            template = template.replace(placeholder, shown)
        assert "{{" not in template, template
        out[key] = template
    return out


def rule(name: str) -> dict[str, Any]:
    return next(r for g in rule_groups() for r in g["rules"] if r.get("alert") == name)


CONFIGURED = [(k, s.alert) for k in CATALOG if (s := CONFIG.kpis[k.name]).alert is not None]


@pytest.mark.parametrize(("k", "alert"), CONFIGURED, ids=[k.name for k, _ in CONFIGURED])
def test_each_alert_fires_after_for_only_with_enough_samples(
    tmp_path: Path, k: Kpi, alert: Alert
) -> None:
    window = window_name(alert.window_s) if alert.window_s else "1h"
    name = rules.alert_name(k, alert)
    enough = -(-alert.min_samples // 2)  # per worker, so the fleet has at least min_samples
    fire_at = f"{alert.for_s // 60 + 2}m"
    expected_labels = {"severity": alert.severity, "kpi": k.name, "service": "cxkpi"}
    if alert.window_s is not None:
        expected_labels.update(window=window, dimension="all", segment="all")
    else:
        expected_labels.update(dimension="all", segment="all")
    if k.kind.name == "money":
        expected_labels["currency"] = "EUR"

    annotations = rule(name)["annotations"]

    def case(samples: int, bad: bool, fires: bool, at: str = fire_at) -> dict[str, Any]:
        per_worker, value = components_for(k, alert, bad, samples)
        expected = [
            {"exp_labels": expected_labels, "exp_annotations": rendered(annotations, value)}
        ]
        return {
            "interval": "1m",
            "input_series": coverage(EXACTLY_ONCE) + kpi_series(k, per_worker, window),
            "alert_rule_test": [
                {"eval_time": at, "alertname": name, "exp_alerts": expected if fires else []}
            ],
        }

    cases = [case(enough, bad=True, fires=True), case(enough, bad=False, fires=False)]
    guarded = not k.is_live or k.kind.name == "customers"  # customers: previous customers
    if alert.min_samples > 1 and guarded:  # the guard: one sample short of the minimum
        cases.append(case((alert.min_samples - 1) // 2, bad=True, fires=False))
    if alert.for_s >= 120:  # not yet: the condition has held for less than `for`
        cases.append(case(enough, bad=True, fires=False, at=f"{alert.for_s // 60 - 1}m"))
    run_promtool_tests(tmp_path, cases)


def expect(
    name: str, at: str, topics: list[str | None], value: float = 0, **extra: str
) -> dict[str, Any]:
    """An alert_rule_test: `name` fires at `at` once per topic (None: no topic label)."""
    alert = rule(name)
    exp = []
    for topic in topics:
        labels = {**alert["labels"], **extra, **({"topic": topic} if topic else {})}
        exp.append(
            {"exp_labels": labels, "exp_annotations": rendered(alert["annotations"], value, labels)}
        )
    return {"eval_time": at, "alertname": name, "exp_alerts": exp}


def test_health_alerts(tmp_path: Path) -> None:
    alerting = CONFIG.alerting
    lag = {
        "series": "cxkpi_consumer_lag_records"
        + labels(instance="w1", topic="tickets", partition="0"),
        "values": "50x40",
    }
    stuck = {  # partition 0 of tickets makes no progress while 50 records wait
        "series": "cxkpi_events_total"
        + labels(instance="w1", topic="tickets", partition="0", outcome="applied"),
        "values": "100x40",
    }
    moving = [s for s in coverage(EXACTLY_ONCE) if s["series"] != stuck["series"]]
    silent = [{**s, "values": "100x40"} for s in coverage(EXACTLY_ONCE)]
    per_minute = alerting.dead_letter_min_events
    dead = {  # dead_letter_min_events per minute, beside 40 applied per minute
        "series": "cxkpi_events_total"
        + labels(instance="w1", topic="cart-events", partition="0", outcome="dead_lettered"),
        "values": f"0+{per_minute}x40",
    }
    share = per_minute / (per_minute + 4 * 10)
    uncovered_at = f"{alerting.uncovered_for_s // 60 + 2}m"
    run_promtool_tests(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": [*moving, stuck, lag],
                "alert_rule_test": [
                    expect(
                        "CxkpiConsumerStalled",
                        f"{alerting.stalled_for_s // 60 + 7}m",
                        ["tickets"],
                        50,
                        partition="0",
                    )
                ],
            },
            {
                "interval": "1m",
                "input_series": [*coverage(EXACTLY_ONCE), dead],
                "alert_rule_test": [
                    expect("CxkpiDeadLettersHigh", "12m", ["cart-events"], share),
                    expect("CxkpiPartitionsNotCovered", "12m", []),
                    expect("CxkpiNoEventsApplied", "12m", []),
                ],
            },
            {  # producers stopped: nothing applied on any topic
                "interval": "1m",
                "input_series": silent,
                "alert_rule_test": [
                    expect("CxkpiNoEventsApplied", f"{alerting.silent_for_s // 60 + 7}m", TOPICS)
                ],
            },
            {  # worker w2 is gone and nobody took partitions 2 and 3
                "interval": "1m",
                "input_series": coverage({0: ["w1"], 1: ["w1"]}),
                "alert_rule_test": [
                    expect("CxkpiPartitionsNotCovered", uncovered_at, TOPICS, PARTITIONS)
                ],
            },
            {
                "interval": "1m",
                "input_series": [{"series": 'up{job="cxkpi"}', "values": "0x30"}],
                "alert_rule_test": [expect("CxkpiNoWorker", uncovered_at, [None], 1)],
            },
        ],
    )


def test_the_snapshot_is_stale_once_no_worker_saw_a_recent_one(tmp_path: Path) -> None:
    """CxkpiSnapshotStale: the newest snapshot any worker wrote or saw (the gauge is when it was
    written, so in the promtool tests, where time() is minutes since 0, a current one reads
    60 per minute) is older than snapshot_stale_after; not while one worker still sees fresh
    ones, as after a takeover (the dead writer's series ends)."""
    after = CONFIG.alerting.snapshot_stale_after_s
    name = health.SNAPSHOT_PUBLISHED

    def seen(worker: str, values: str) -> dict[str, str]:
        return {"series": name + labels(instance=worker), "values": values}

    stopped = [seen("w1", "0+60x10 600x30"), seen("w2", "0+60x5 300x35")]  # since minute 10
    fires = 10 + after // 60 + 1  # the first whole minute at which the age exceeds `after`
    taken_over = [seen("w1", "0+60x5 _x35"), seen("w2", "0+60x40")]
    run_promtool_tests(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": stopped,
                "alert_rule_test": [
                    {"eval_time": f"{fires - 1}m", "alertname": "CxkpiSnapshotStale"},
                    expect("CxkpiSnapshotStale", f"{fires}m", [None], 60 * fires - 600),
                ],
            },
            {
                "interval": "1m",
                "input_series": taken_over,
                "alert_rule_test": [{"eval_time": "30m", "alertname": "CxkpiSnapshotStale"}],
            },
        ],
    )


def test_every_alert_has_a_runbook_section() -> None:
    runbook = (ROOT / "docs/runbook.md").read_text()
    anchors = {line[3:].strip().lower() for line in runbook.splitlines() if line.startswith("## ")}
    for group in rule_groups():
        for r in group["rules"]:
            if "alert" in r:
                assert r["annotations"]["runbook_url"].split("#")[1] in anchors, r["alert"]
