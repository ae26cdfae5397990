"""Prometheus recording and alert rules of the change alerts, generated from the KPI file.

Per KPI with a change alert and per segment, from the fleet's summed components (the
`window_dimension_segment:cxkpi_<kpi>_<component>:sum` records, guarded by partition coverage)
of its four windows: the samples, value and per-sample variance over the short window, the
confirmation window and the baseline before each; then the standard error of each difference
and z. The arithmetic is stream/kpis/change.py's, written in PromQL; the alert fires on the
short window's z confirmed by the confirmation window's, with enough samples, after `for`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from stream.config import window_label, window_name
from stream.kpis.change import Watch
from stream.monitoring.health import seconds_text

#: The windows of a change alert, in the order of Watch.keys, as named in its records.
ROLES = ("short", "confirmation", "baseline", "confirmation_baseline")
BY = "dimension, segment"


def prefix(watch: Watch) -> str:
    """The level and metric of a KPI's change records: `dimension_segment:cxkpi_nps_change`."""
    return f"dimension_segment:cxkpi_{watch.kpi.name}_change"


def record(watch: Watch, operation: str) -> str:
    """A change record's name: `dimension_segment:cxkpi_nps_change:z`."""
    return f"{prefix(watch)}:{operation}"


def component_sum(watch: Watch, component: str) -> str:
    """The recorded fleet sum of one of the KPI's components (per window and segment)."""
    return f"window_dimension_segment:cxkpi_{watch.kpi.name}_{component}:sum"


def _number(x: float) -> str:
    return f"{x:.17g}"


def _role_rules(watch: Watch, role: str, key: int) -> Iterator[dict[str, str]]:
    """Samples, value and per-sample variance over one window (stream.kpis.change.estimate),
    through the shares or means they are made of, each recorded once."""
    estimator = watch.estimator
    window = window_label(key)
    samples = record(watch, f"{role}_samples")
    yield {
        "record": samples,
        "expr": "\n+ ".join(
            f'sum by ({BY}) ({component_sum(watch, c)}{{window="{window}"}})'
            for c in estimator.count
        ),
    }

    def per_sample(operation: str, component: str) -> Iterator[dict[str, str]]:
        summed = f'sum by ({BY}) ({component_sum(watch, component)}{{window="{window}"}})'
        yield {
            "record": record(watch, f"{role}_{operation}"),
            "expr": f"{summed}\n/ ({samples} > 0)",
        }

    def of(operation: str) -> str:
        return record(watch, f"{role}_{operation}")

    if estimator.form == "proportion":
        yield from per_sample("share", estimator.first)
        value, variance = of("share"), f"{of('share')}\n* (1 - {of('share')})"
    elif estimator.form == "net":
        yield from per_sample("first_share", estimator.first)
        yield from per_sample("second_share", estimator.second)
        net = f"({of('first_share')} - {of('second_share')})"
        value, variance = net, f"{of('first_share')} + {of('second_share')}\n- {net}\n* {net}"
    elif estimator.form == "mean":
        yield from per_sample("mean", estimator.first)
        yield from per_sample("mean_square", estimator.second)
        value, variance = of("mean"), f"{of('mean_square')}\n- {of('mean')} * {of('mean')}"
    else:
        raise ValueError(f"unknown estimator form {estimator.form!r}")
    scale = estimator.scale
    scaled = "" if scale == 1 else f"{_number(scale)} * "
    squared = "" if scale == 1 else f"{_number(scale * scale)} * "
    yield {"record": record(watch, role), "expr": f"{scaled}{value}"}
    yield {
        "record": record(watch, f"{role}_variance"),
        "expr": f"{squared}clamp_min(\n{variance},\n0)",
    }


def _test_rules(watch: Watch, tested: str, baseline: str, name: str) -> Iterator[dict[str, str]]:
    """The standard error of the difference of a window and its baseline, and z; no z where
    both are constant and equal (0 / 0), an infinite one where they differ."""
    stderr = record(watch, "stderr" if name == "z" else f"{tested}_stderr")
    terms = [
        f"{record(watch, f'{role}_variance')} / {record(watch, f'{role}_samples')}"
        for role in (tested, baseline)
    ]
    yield {"record": stderr, "expr": "sqrt(\n" + "\n+ ".join(terms) + "\n)"}
    difference = f"({record(watch, tested)} - {record(watch, baseline)})"
    yield {
        "record": record(watch, name),
        "expr": f"{difference} / {stderr}\nunless ({stderr} == 0 and {difference} == 0)",
    }


def change_recording_rules(watch: Watch) -> Iterator[dict[str, str]]:
    """Every record of one KPI's change alert."""
    for role, key in zip(ROLES, watch.keys, strict=True):
        yield from _role_rules(watch, role, key)
    yield from _test_rules(watch, "short", "baseline", "z")
    yield from _test_rules(watch, "confirmation", "confirmation_baseline", "confirmation_z")


def alert_name(watch: Watch) -> str:
    """`NpsChanged`, `CartAbandonmentChanged`: one alert per KPI, its segment in labels."""
    return "".join(word.capitalize() for word in watch.kpi.name.split("_")) + "Changed"


def condition(watch: Watch) -> str:
    """The alert's expression: z and the confirmation's z beyond their thresholds in the
    direction, with min_samples in the short window and in its baseline."""
    c = watch.change
    z, zc = record(watch, "z"), record(watch, "confirmation_z")
    down = f"{z} <= -{c.z:g}\nand {zc} <= -{c.confirmation_z:g}"
    up = f"{z} >= {c.z:g}\nand {zc} >= {c.confirmation_z:g}"
    beyond = {"down": down, "up": up, "both": f"(\n{down}\nor\n{up}\n)"}[watch.direction]
    enough = (
        f"{record(watch, 'short_samples')} >= {c.min_samples}\n"
        f"and {record(watch, 'baseline_samples')} >= {c.min_samples}"
    )
    return f"{beyond}\nand {enough}"


def by_chance(z: float) -> int:
    """About how many tests it takes for chance alone to go z standard errors one way."""
    return round(1 / (0.5 * math.erfc(z / math.sqrt(2))))


def _query(watch: Watch, operation: str) -> str:
    """A template printing a change record of the alert's segment (Prometheus' `query`)."""
    selector = "{dimension='%s', segment='%s'}"
    return (
        f'{{{{ with printf "{record(watch, operation)}{selector}" $labels.dimension '
        f'$labels.segment | query }}}}{{{{ . | first | value | printf "%.4g" }}}}{{{{ end }}}}'
    )


#: The alert's segment as people read it: "team billing", or "all segments".
SEGMENT = (
    '{{ if eq $labels.dimension "all" }}all segments'
    "{{ else }}{{ $labels.dimension }} {{ $labels.segment }}{{ end }}"
)


def change_alert(watch: Watch, runbook_url: str) -> dict[str, Any]:
    """The alert of one KPI's change, per segment: the value, the baseline and how unusual."""
    c = watch.change
    name = alert_name(watch)
    short, confirmation, baseline = (
        window_name(s) for s in (c.short_s, c.confirmation_s, c.baseline_s)
    )
    way = {"down": "lower", "up": "higher", "both": "away"}[watch.direction]
    return {
        "alert": name,
        "expr": condition(watch),
        "for": seconds_text(c.for_s),
        "labels": {
            "severity": c.severity,
            "kpi": watch.kpi.name,
            "service": "cxkpi",
            "alert_kind": "change",
        },
        "annotations": {
            "summary": f"{watch.kpi.title} of {SEGMENT} over {short} is "
            f"{_query(watch, 'short')} against its baseline of {_query(watch, 'baseline')} "
            f'(the {baseline} before): z = {{{{ $value | printf "%.1f" }}}} standard errors, '
            f"beyond the {c.z:g} that chance alone reaches about once in {by_chance(c.z)} tests",
            "description": f"The fleet-wide {watch.kpi.title} of {SEGMENT} over the last {short} "
            f"is {c.z:g} or more standard errors {way} than over the {baseline} before it, "
            f"and {c.confirmation_z:g} or more over the last {confirmation} than over the "
            f"{baseline} before that, with at least {c.min_samples} samples in the {short} "
            f"and in its baseline, for {seconds_text(c.for_s)}: more than the number of "
            "samples explains. The runbook says how to find what changed.",
            "runbook_url": f"{runbook_url}#{name.lower()}",
        },
    }


def tested_series(watch: Watch, values: list[Any]) -> int:
    """Which of a KPI's recorded values (rules.values) its change alert tests: the mean for a
    mean estimator (a duration's panels start with its p90), else the first."""
    if watch.estimator.form == "mean":
        return next(i for i, s in enumerate(values) if s.record.endswith(":mean"))
    return 0


BAND = ("baseline - 2 SE", "baseline + 2 SE")


def band_targets(watch: Watch, selector: str) -> list[dict[str, str]]:
    """The dashboard's lines of a change alert: the value over the short window, the baseline
    and the band of 2 standard errors around it (outside it, |z| > 2)."""
    c = watch.change
    short, baseline = window_name(c.short_s), window_name(c.baseline_s)
    value, base = record(watch, "short"), record(watch, "baseline")
    stderr = record(watch, "stderr")
    return [
        {"expr": f"{value}{{{selector}}}", "legendFormat": f"over {short} (change alert)"},
        {
            "expr": f"{base}{{{selector}}}",
            "legendFormat": f"baseline ({baseline} before the last {short})",
        },
        {"expr": f"{base}{{{selector}}} - 2 * {stderr}{{{selector}}}", "legendFormat": BAND[0]},
        {"expr": f"{base}{{{selector}}} + 2 * {stderr}{{{selector}}}", "legendFormat": BAND[1]},
    ]


def band_overrides() -> list[dict[str, Any]]:
    """Grafana field overrides that shade the band between its two lines."""
    low, high = BAND
    return [
        {
            "matcher": {"id": "byName", "options": high},
            "properties": [
                {"id": "custom.fillBelowTo", "value": low},
                {"id": "custom.fillOpacity", "value": 20},
                {"id": "custom.lineWidth", "value": 0},
            ],
        },
        {
            "matcher": {"id": "byName", "options": low},
            "properties": [{"id": "custom.lineWidth", "value": 0}],
        },
    ]
