"""Prometheus recording and alert rules, generated from the KPI configuration file.

Workers export each KPI as components per partition they own. The recording rules sum the
components over workers, then divide, and name the result `level:metric:operations`
(`window_dimension_segment:cxkpi_nps:score`). A KPI is recorded only while every partition of its
topic is owned by exactly one scraped worker: during a rebalance, or while a dead worker's
partitions move, the series has a short gap instead of a false dip or a double-counted spike.

Alert thresholds come from `cxkpi.toml`, so `cxkpi rules` is the one way these files change.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from stream.config.kpifile import Alert, KpiConfig
from stream.config.options import OPTIONS
from stream.kpis.catalog import CATALOG, Kpi
from stream.kpis.change import watches
from stream.kpis.kinds import (
    CUSTOMER_COMPONENTS,
    Adoption,
    AgeHistogram,
    Average,
    Count,
    Customers,
    Duration,
    Fraction,
    LiveGauge,
    Mean,
    Money,
    NetScore,
    Sentiment,
    Share,
    Shares,
    Stickiness,
)
from stream.monitoring.change import change_alert, change_recording_rules
from stream.monitoring.health import COVERED, health_alerts, health_recording_rules, seconds_text
from stream.state.windows import window_name

LEVEL = "window_dimension_segment"
LIVE_LEVEL = "dimension_segment"
BY = "window, dimension, segment"
#: The customer KPIs' cap of the expected lifetime (1 / churn): the worker's default setting, so
#: the fleet-wide CLV equals the one in /kpis unless a deployment changes max_lifetime_periods.
MAX_LIFETIME_PERIODS = int(next(o for o in OPTIONS if o.name == "max_lifetime_periods").default)
#: Customer components counted per currency (the others are counts of customers or orders)
CUSTOMER_MONEY = ("priced_orders", "amount")


@dataclass(frozen=True)
class Series:
    """One recorded fleet-wide value of a KPI: its rule name and what it means."""

    record: str
    title: str
    unit: str  # Grafana unit: percentunit, none, s, short
    labels: tuple[str, ...] = ("window", "dimension", "segment")


#: The exported series of the backlog age (kind AgeHistogram).
AGE_HISTOGRAM = "cxkpi_backlog_age_seconds"
OLDEST_AGE = "cxkpi_backlog_oldest_age_seconds"


def components(kpi: Kpi) -> list[str]:
    """The exported component metrics of a KPI (summed over workers by the rules)."""
    match kpi.kind:
        case AgeHistogram():
            return [f"{AGE_HISTOGRAM}_gcount", f"{AGE_HISTOGRAM}_gsum"]
        case Duration():
            return [
                f"cxkpi_{kpi.name}_seconds_gcount",
                f"cxkpi_{kpi.name}_seconds_gsum",
                f"cxkpi_{kpi.name}_seconds_sum_of_squares",
            ]
        case Customers():
            return [f"cxkpi_customers_{key}" for key in (*CUSTOMER_COMPONENTS, *CUSTOMER_MONEY)]
    parts = [f"cxkpi_{kpi.name}_{part}" for part, _ in kpi.parts]
    if isinstance(kpi.kind, NetScore):
        return [*parts, f"cxkpi_{kpi.name}_{kpi.kind.total}"]
    if isinstance(kpi.kind, Sentiment):
        return [*parts, f"cxkpi_{kpi.name}_scored"]
    if isinstance(kpi.kind, Shares):
        return [parts[0], f"cxkpi_{kpi.name}_named"]
    return parts


def level(kpi: Kpi) -> str:
    if kpi.is_live:
        return LIVE_LEVEL
    return f"{LEVEL}_currency" if isinstance(kpi.kind, Money) else LEVEL


def by(kpi: Kpi) -> str:
    if kpi.is_live:
        return "dimension, segment"
    return f"{BY}, currency" if isinstance(kpi.kind, Money) else BY


def _label_of(kpi: Kpi, metric: str) -> str | None:
    """The label a component is counted per beyond the KPI's own: a customer money component's
    currency, the class of a Shares KPI's named count."""
    if isinstance(kpi.kind, Customers) and metric.endswith(CUSTOMER_MONEY):
        return "currency"
    if isinstance(kpi.kind, Shares) and metric.endswith("_named"):
        return kpi.kind.label
    return None


def summed(kpi: Kpi, metric: str) -> str:
    """The recording rule name of a component's fleet-wide sum."""
    label = _label_of(kpi, metric)
    return f"{level(kpi)}{'_' + label if label else ''}:{metric}:sum"


def samples(kpi: Kpi) -> str:
    """The recording rule name of a windowed KPI's sample count (the min_samples guard)."""
    return f"{level(kpi)}:cxkpi_{kpi.name}:samples"


def values(kpi: Kpi) -> list[Series]:
    """The recorded values of a KPI, the first being the one its alert compares."""
    title = kpi.title
    name = f"{level(kpi)}:cxkpi_{kpi.name}"
    match kpi.kind:
        case Count():  # the summed count is the value
            return [Series(summed(kpi, f"cxkpi_{kpi.name}_{kpi.parts[0][0]}"), title, "short")]
        case Stickiness():
            return [Series(f"{name}:ratio", title, "percentunit", ("dimension", "segment"))]
        case Average():
            return [Series(f"{name}:mean", title, "none")]
        case Share() | Fraction(scale=1):
            return [Series(f"{name}:ratio", title, "percentunit")]
        case Fraction():
            return [Series(f"{name}:score", f"{title} (%)", "percent")]
        case NetScore():
            return [Series(f"{name}:score", title, "none")]
        case Shares(label=label):
            return [
                Series(
                    f"{LEVEL}_{label}:cxkpi_{kpi.name}:share",
                    f"{title}: share naming each",
                    "percentunit",
                    ("window", "dimension", "segment", label),
                )
            ]
        case Sentiment():
            return [
                Series(f"{name}:net", f"Net {kpi.name}", "none"),
                Series(f"{name}:mean", f"{title}: mean score (-1..1)", "none"),
                Series(f"{name}:negative_ratio", f"{title}: share negative", "percentunit"),
            ]
        case Mean(share_key=share, scale=scale, good=good):
            return [
                Series(f"{name}:mean", f"{title} (mean, {scale})", "none"),
                Series(f"{name}:{share}", f"{title}: share {good}", "percentunit"),
            ]
        case Duration():
            seconds = f"{level(kpi)}:cxkpi_{kpi.name}_seconds"
            return [
                Series(f"{seconds}:p90", f"{title} p90", "s"),
                Series(f"{seconds}:p50", f"{title} median", "s"),
                Series(f"{seconds}:mean", f"{title} mean", "s"),
            ]
        case Money():
            labels = ("window", "dimension", "segment", "currency")
            return [Series(f"{name}:average", title, "none", labels)]
        case Customers():
            live = ("dimension", "segment")
            return [
                Series(f"{name}:churn_ratio", "Customer churn", "percentunit", live),
                Series(f"{name}:retention_ratio", "Customer retention", "percentunit", live),
                Series(
                    f"{name}:repeat_purchase_ratio", "Repeat purchase rate", "percentunit", live
                ),
                Series(f"{name}:purchase_frequency", "Purchase frequency", "none", live),
                Series(
                    f"{name}:expected_lifetime_periods", "Expected lifetime (periods)", "none", live
                ),
                Series(
                    f"{LIVE_LEVEL}_currency:cxkpi_{kpi.name}:lifetime_value",
                    "Customer lifetime value",
                    "none",
                    (*live, "currency"),
                ),
            ]
        case AgeHistogram():
            return [
                Series(f"{LIVE_LEVEL}:{OLDEST_AGE}:max", "Oldest open ticket", "s", labels=()),
                Series(f"{LIVE_LEVEL}:{AGE_HISTOGRAM}:mean", "Mean open ticket age", "s", ()),
            ]
        case _:
            return [Series(summed(kpi, f"cxkpi_{kpi.name}_tickets"), title, "short", labels=())]


def _guarded(expr: str, kpi: Kpi) -> str:
    return f'{expr}\nand on () {COVERED}{{topic="{kpi.topic}"}}'


def _divide(numerator: str, denominator: str, scale: float = 1) -> str:
    scaled = f"{scale:g} * " if scale != 1 else ""
    return f"{scaled}{numerator}\n/ on ({BY}) ({denominator} > 0)"


def _overall_on_each_row(kpi: Kpi, metric: str) -> str:
    """Feature adoption's denominator on every feature's row: the workers' overall rows summed
    (a worker none of whose users used a feature has no row of it to sum)."""
    return f"sum by ({BY}) ({components(kpi)[0]}) * 0\n+ on (window) group_left ()\n" + (
        f'sum by (window) ({metric}{{dimension="all", segment="all"}})'
    )


def recording_rules(kpi: Kpi) -> Iterator[dict[str, str]]:
    """Sums of the components (guarded by partition coverage), then the values from them."""
    for metric in components(kpi):
        if isinstance(kpi.kind, AgeHistogram) and metric.endswith("_gsum"):
            continue  # the mean is computed from the buckets' own sum below
        label = _label_of(kpi, metric)
        expr = f"sum by ({by(kpi)}{', ' + label if label else ''}) ({metric})"
        if isinstance(kpi.kind, Adoption) and metric != components(kpi)[0]:
            expr = _overall_on_each_row(kpi, metric)
        yield {"record": summed(kpi, metric), "expr": _guarded(expr, kpi)}
    match kpi.kind:
        case LiveGauge():
            return
        case Count():  # its samples (an alert's min_samples) are the count itself
            yield {"record": samples(kpi), "expr": summed(kpi, components(kpi)[0])}
            return
        case AgeHistogram():
            yield from _age_rules(kpi)
            return
        case Customers():
            yield from _customer_rules(kpi)
            return
    parts = [summed(kpi, m) for m in components(kpi)]
    n = kpi.name
    match kpi.kind:
        case Share():
            first, second = parts
            yield {"record": samples(kpi), "expr": f"{first} + {second}"}
            yield {"record": values(kpi)[0].record, "expr": _divide(first, samples(kpi))}
        case Fraction(scale=scale):
            first, second = parts
            yield {"record": samples(kpi), "expr": second}
            yield {
                "record": values(kpi)[0].record,
                "expr": _divide(first, samples(kpi), scale),
            }
        case NetScore():
            top, _, bottom, total = parts
            yield {"record": samples(kpi), "expr": total}
            yield {
                "record": values(kpi)[0].record,
                "expr": _divide(f"({top} - {bottom})", samples(kpi), 100),
            }
        case Shares():
            total, named = parts
            yield {"record": samples(kpi), "expr": total}
            yield {
                "record": values(kpi)[0].record,
                "expr": f"{named}\n/ on ({BY}) group_left () ({samples(kpi)} > 0)",
            }
        case Sentiment():
            positive, _, negative, _, score_sum, scored = parts
            net, mean, negative_ratio = values(kpi)
            yield {"record": samples(kpi), "expr": scored}
            yield {
                "record": net.record,
                "expr": _divide(f"({positive} - {negative})", samples(kpi), 100),
            }
            yield {"record": mean.record, "expr": _divide(score_sum, samples(kpi))}
            yield {"record": negative_ratio.record, "expr": _divide(negative, samples(kpi))}
        case Mean():
            responses, score_sum, easy, _ = parts  # the sum of squares: change alerts
            mean, easy_ratio = values(kpi)
            yield {"record": samples(kpi), "expr": responses}
            yield {"record": mean.record, "expr": _divide(score_sum, samples(kpi))}
            yield {"record": easy_ratio.record, "expr": _divide(easy, samples(kpi))}
        case Duration():
            p90, p50, mean = values(kpi)
            buckets = _guarded(f"sum by ({BY}, le) (cxkpi_{n}_seconds_bucket)", kpi)
            yield {"record": samples(kpi), "expr": parts[0]}
            for series, q in ((p90, "0.9"), (p50, "0.5")):
                yield {  # a window without samples has no quantile (not NaN)
                    "record": series.record,
                    "expr": f"histogram_quantile({q},\n{buckets}\n)\n"
                    f"and on ({BY}) {samples(kpi)} > 0",
                }
            gsum = _guarded(f"sum by ({BY}) (cxkpi_{n}_seconds_gsum)", kpi)
            yield {"record": mean.record, "expr": _divide(f"({gsum})", samples(kpi))}
        case Money():
            orders, amount = parts
            yield {"record": samples(kpi), "expr": orders}
            yield {
                "record": values(kpi)[0].record,
                "expr": f"{amount}\n/ on ({by(kpi)}) ({samples(kpi)} > 0)",
            }


def _age_rules(kpi: Kpi) -> Iterator[dict[str, str]]:
    """The backlog age: the fleet's histogram, the oldest ticket (the largest over workers,
    each reporting its own partitions' oldest) and the mean age."""
    oldest, mean = values(kpi)
    live_by = by(kpi)
    yield {
        "record": f"{LIVE_LEVEL}:{AGE_HISTOGRAM}_bucket:sum",
        "expr": _guarded(f"sum by ({live_by}, le) ({AGE_HISTOGRAM}_bucket)", kpi),
    }
    yield {"record": oldest.record, "expr": _guarded(f"max by ({live_by}) ({OLDEST_AGE})", kpi)}
    count = summed(kpi, f"{AGE_HISTOGRAM}_gcount")
    gsum = _guarded(f"sum by ({live_by}) ({AGE_HISTOGRAM}_gsum)", kpi)
    yield {"record": mean.record, "expr": f"({gsum})\n/ on ({live_by}) ({count} > 0)"}


def _customer_rules(kpi: Kpi) -> Iterator[dict[str, str]]:
    """The customer KPIs from the fleet's customer counts (each customer is on one partition,
    so the sums are distinct customers); no value while previous (churn, retention) or active
    (repeat purchase, frequency) customers are 0, and so no lifetime value then either."""
    active, previous, retained, repeat, orders, _, priced, amount = (
        summed(kpi, m) for m in components(kpi)
    )
    churn, retention, repeat_ratio, frequency, lifetime, value = values(kpi)
    live_by = by(kpi)

    def divide(numerator: str, denominator: str) -> str:
        return f"{numerator}\n/ on ({live_by}) ({denominator} > 0)"

    yield {"record": churn.record, "expr": divide(f"({previous} - {retained})", previous)}
    yield {"record": retention.record, "expr": divide(retained, previous)}
    yield {"record": repeat_ratio.record, "expr": divide(repeat, active)}
    yield {"record": frequency.record, "expr": divide(orders, active)}
    yield {  # churn 0 gives 1 / 0 = +Inf, clamped to the cap
        "record": lifetime.record,
        "expr": f"clamp_max(1 / {churn.record}, {MAX_LIFETIME_PERIODS})",
    }
    yield {  # average order value x purchase frequency x expected lifetime, per currency
        "record": value.record,
        "expr": f"{amount}\n/ on ({live_by}, currency) ({priced} > 0)\n"
        f"* on ({live_by}) group_left {frequency.record}\n"
        f"* on ({live_by}) group_left {lifetime.record}",
    }


# -- alerts ------------------------------------------------------------------------------------


def alert_name(kpi: Kpi, alert: Alert) -> str:
    camel = "".join(word.capitalize() for word in kpi.name.split("_"))
    if alert.kind == "oldest_above":
        return "OldestTicketTooOld"
    if alert.kind == "p90_above":
        return f"{camel}P90TooLong"
    if isinstance(kpi.kind, Customers):
        return "CustomerChurnTooHigh"
    if isinstance(kpi.kind, LiveGauge):
        return f"{camel}TooLarge"
    return f"{camel}Too{'High' if alert.kind == 'above' else 'Low'}"


def kpi_alert(kpi: Kpi, alert: Alert, runbook_url: str) -> dict[str, Any]:
    """The alert of one KPI: its fleet-wide overall value against the threshold, and only with at
    least min_samples samples in the window (so a handful of replies cannot page anyone)."""
    value = values(kpi)[0]
    op = "<" if alert.kind == "below" else ">"
    direction = "below" if alert.kind == "below" else "above"
    is_duration = value.unit == "s"
    threshold = seconds_text(int(alert.threshold)) if is_duration else f"{alert.threshold:g}"
    shown = "humanizeDuration" if is_duration else 'printf "%.4g"'
    name = alert_name(kpi, alert)
    title = "NPS" if kpi.name == "nps" else kpi.name.replace("_", " ")
    labels = {"severity": alert.severity, "kpi": kpi.name, "service": "cxkpi"}
    counted = {  # values of now whose min_samples counts a component: (it, scope, what)
        Customers: ("previous", "over the last customer period", "customers in the period before"),
        Stickiness: ("monthly", "", "users active over 30 d"),
    }.get(type(kpi.kind))
    if counted is not None:
        component, scope, what = counted
        guarded = summed(kpi, f"cxkpi_{kpi.name}_{component}")
        expr = (
            f'{value.record}{{dimension="all"}} {op} {alert.threshold:g}\n'
            f'and on ({by(kpi)}) {guarded}{{dimension="all"}} >= {alert.min_samples}'
        )
        guard = f" It needs at least {alert.min_samples} {what}."
    elif alert.window_s is None:  # the live backlog
        expr = f'{value.record}{{dimension="all"}} {op} {alert.threshold:g}'
        scope, guard = "", ""
    else:
        labels["window"] = window = window_name(alert.window_s)
        selector = f'{{window="{window}", dimension="all"}}'
        expr = (
            f"{value.record}{selector} {op} {alert.threshold:g}\n"
            f"and on ({by(kpi)}) {samples(kpi)}{selector} >= {alert.min_samples}"
        )
        scope = f"over {window}"
        guard = f" It needs at least {alert.min_samples} samples in the window."
    quantity = {"p90_above": f"{title} p90", "oldest_above": "oldest open ticket's age"}.get(
        alert.kind, "customer churn" if isinstance(kpi.kind, Customers) else title
    )
    return {
        "alert": name,
        "expr": expr,
        "for": seconds_text(alert.for_s),
        "labels": labels,
        "annotations": {
            "summary": f"{quantity[0].upper()}{quantity[1:]} {scope or 'now'} is "
            f"{{{{ $value | {shown} }}}}, {direction} {threshold}",
            "description": f"The fleet-wide {quantity} (all segments)"
            f"{scope and ' ' + scope} has been {direction} {threshold} "
            f"for {seconds_text(alert.for_s)}.{guard}"
            + (
                " The dashboard's segment variables show where it comes from."
                if kpi.dimensions
                else ""
            ),
            "runbook_url": f"{runbook_url}#{name.lower()}",
        },
    }


def rule_groups(config: KpiConfig) -> dict[str, Any]:
    """The whole rule file: recording rules (the change alerts' after the KPIs' they read, in
    the same group, so an evaluation reads this evaluation's sums), then KPI threshold alerts,
    change alerts and health alerts."""
    enabled = [k for k in CATALOG if config.kpis[k.name].enabled]
    recording = health_recording_rules()
    for kpi in enabled:
        recording.extend(recording_rules(kpi))
    changes = watches(config.changes())
    for watch in changes:
        recording.extend(change_recording_rules(watch))
    runbook = config.alerting.runbook_url
    kpi_alerts = [
        kpi_alert(kpi, alert, runbook)
        for kpi in enabled
        if (alert := config.kpis[kpi.name].alert) is not None
    ]
    return {
        "groups": [
            {"name": "cxkpi.recording", "rules": recording},
            {"name": "cxkpi.kpi-alerts", "rules": kpi_alerts},
            {"name": "cxkpi.change-alerts", "rules": [change_alert(w, runbook) for w in changes]},
            {"name": "cxkpi.health-alerts", "rules": health_alerts(config.alerting)},
        ]
    }
