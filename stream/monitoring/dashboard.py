"""The Grafana dashboard, generated from the KPI configuration file and the recording rules.

Every KPI panel queries a recording rule (fleet-wide, summed over workers, then divided), with
the window, dimension and segment chosen by dashboard variables. Alert thresholds from
`cxkpi.toml` are drawn as threshold lines, so the dashboard and the alerts never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from stream.config.kpifile import Alert, KpiConfig
from stream.kpis.catalog import CATALOG, Kpi
from stream.kpis.change import Watch, watches
from stream.kpis.customers import CUSTOMERS_TOPIC
from stream.kpis.kinds import AgeHistogram, Customers
from stream.monitoring import change, health, rules
from stream.state.windows import window_name

UID = "cxkpi-overview"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
WIDTH, HEIGHT, COLUMNS = 8, 8, 3
#: What customers say and feel, apart from the scores they give (kpis.md, "Voice of the customer").
VOICE = frozenset({"sentiment", "net_emotion", "emotions", "review_rating"})
#: The labels every recorded KPI value has (a panel's legend names any other: currency, ...)
SEGMENT_LABELS = ("window", "dimension", "segment")
#: (title, topic, whether a KPI of the topic is in the row)
ROWS = (
    ("Commerce", "cart-events", lambda name: True),
    ("Support", "tickets", lambda name: True),
    ("Surveys", "survey-replies", lambda name: name not in VOICE),
    ("Voice of the customer", "survey-replies", lambda name: name in VOICE),
    ("Engagement", "activity", lambda name: True),
    ("Customers", CUSTOMERS_TOPIC, lambda name: True),
)
#: The KPIs of the trend row, over the longest window: what a CX manager reports each month.
TREND = ("nps", "csat", "cart_abandonment", "resolution_time")
SELECTOR = 'window="$window", dimension="$dimension", segment="$segment"'
LIVE_SELECTOR = 'dimension="$dimension", segment="$segment"'
#: Keeps the process series of cxkpi workers, not of other targets that export them too
WORKERS = "and on (instance) cxkpi_partitions_assigned"


def _thresholds(alert: Alert | None) -> dict[str, Any]:
    """Green on the good side of the alert threshold, red beyond it (a line on the graph)."""
    if alert is None:
        return {"mode": "absolute", "steps": [{"color": "green", "value": None}]}
    low, high = ("red", "green") if alert.kind == "below" else ("green", "red")
    return {
        "mode": "absolute",
        "steps": [{"color": low, "value": None}, {"color": high, "value": alert.threshold}],
    }


def _panel(
    title: str,
    targets: list[dict[str, str]],
    unit: str,
    description: str,
    thresholds: dict[str, Any] | None = None,
) -> dict[str, Any]:
    shown = thresholds is not None and len(thresholds["steps"]) > 1
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [
            {"datasource": DATASOURCE, "refId": chr(ord("A") + i), **t}
            for i, t in enumerate(targets)
        ],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": thresholds or _thresholds(None),
                "custom": {"thresholdsStyle": {"mode": "line" if shown else "off"}},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
    }


def _live_target(series: rules.Series) -> dict[str, str]:
    legend = "{{currency}}" if "currency" in series.labels else series.title
    return {"expr": f"{series.record}{{{LIVE_SELECTOR}}}", "legendFormat": legend}


def customer_panels(kpi: Kpi, alert: Alert | None) -> Iterator[dict[str, Any]]:
    """Churn beside retention (with the churn alert's line), the other customer KPIs, and the
    counts they come from: a KPI of few customers reads differently than one of thousands."""
    churn, retention, repeat, frequency, lifetime, value = rules.values(kpi)
    period = "over the last customer period (customer_period, default 30d)"
    line = f" The line is the alert threshold ({rules.alert_name(kpi, alert)})." if alert else ""
    yield _panel(
        "Customer churn and retention",
        [_live_target(churn), _live_target(retention)],
        "percentunit",
        f"Share of the previous period's customers who did not order again {period} "
        f"(`{churn.record}`), and who did (`{retention.record}`).{line}",
        _thresholds(alert),
    )
    cap = rules.MAX_LIFETIME_PERIODS
    for series, text in (
        (repeat, "Share of active customers with two or more orders"),
        (frequency, "Orders per active customer"),
        (lifetime, f"How many periods a customer stays: 1 / churn, capped at {cap}, for churn"),
    ):
        yield _panel(
            series.title,
            [_live_target(series)],
            series.unit,
            f"{text} {period} (`{series.record}`).",
        )
    yield _panel(
        f"{value.title} per currency",
        [_live_target(value)],
        "none",
        "Average order value x purchase frequency x expected lifetime in periods "
        f"(`{value.record}`).",
    )
    yield _panel(
        "Customers",
        [
            {
                "expr": f"{rules.summed(kpi, f'cxkpi_customers_{key}')}{{{LIVE_SELECTOR}}}",
                "legendFormat": key,
            }
            for key in ("active", "previous", "retained")
        ],
        "short",
        "Distinct customers who ordered in the last period (active), in the period before "
        "(previous), and in both (retained).",
    )
    anonymous = rules.summed(kpi, "cxkpi_customers_anonymous_orders")
    yield _panel(
        "Anonymous orders",
        [{"expr": f"{anonymous}{{{LIVE_SELECTOR}}}", "legendFormat": "anonymous orders"}],
        "short",
        f"Orders without a customer {period}: they take no part in the customer KPIs "
        f"(`{anonymous}`).",
    )


def kpi_panels(
    kpi: Kpi, alert: Alert | None, watch: Watch | None = None
) -> Iterator[dict[str, Any]]:
    """One panel per recorded value of the KPI; the alerted value carries the threshold line,
    the value a change alert tests its baseline and the band of ±2 standard errors."""
    if isinstance(kpi.kind, Customers):
        for panel in customer_panels(kpi, alert):
            panel["kpi"] = kpi.name
            yield panel
        return
    values = rules.values(kpi)
    tested = None if watch is None else change.tested_series(watch, values)
    for i, series in enumerate(values):
        selector = LIVE_SELECTOR if kpi.is_live else SELECTOR
        extra = [label for label in series.labels if label not in SEGMENT_LABELS]
        legend = f"{{{{{extra[0]}}}}}" if extra else series.title  # per currency, emotion
        where = "now" if kpi.is_live else "over the selected window"
        description = f"Fleet-wide {series.title.lower()} {where} (`{series.record}`)."
        if alert is not None and i == 0:
            on = f" over {window_name(alert.window_s)}" if alert.window_s else ""
            description += f" The line is the alert threshold ({rules.alert_name(kpi, alert)}{on})."
        targets = [{"expr": f"{series.record}{{{selector}}}", "legendFormat": legend}]
        if watch is not None and i == tested:
            targets += change.band_targets(watch, LIVE_SELECTOR)
            c = watch.change
            description += (
                f" With its value over {window_name(c.short_s)}, the baseline of its change alert "
                f"({change.alert_name(watch)}: the {window_name(c.baseline_s)} before that hour) "
                "and the band of ±2 standard errors around it: outside the band the hour is "
                "more than chance explains (|z| > 2). Annotations mark the KPI's alerts."
            )
        panel = _panel(
            series.title, targets, series.unit, description, _thresholds(alert if i == 0 else None)
        )
        if watch is not None and i == tested:
            panel["fieldConfig"]["overrides"] = change.band_overrides()
        panel["kpi"] = kpi.name  # which alerts it annotates; removed before writing
        yield panel
    if isinstance(kpi.kind, AgeHistogram):
        buckets = f"{rules.LIVE_LEVEL}:{rules.AGE_HISTOGRAM}_bucket:sum"
        yield _panel(
            "Open tickets by age",
            [{"expr": f"{buckets}{{{LIVE_SELECTOR}}}", "legendFormat": "at most {{le}} s old"}],
            "short",
            f"Open tickets at most this old, now, per age bound (`{buckets}`): the backlog that "
            "matters most is the ticket nobody touched for days.",
        )


def trend_panels(config: KpiConfig) -> list[dict[str, Any]]:
    """NPS, CSAT, abandonment and resolution p90 over the longest window, across 30 days."""
    longest = window_name(max(config.windows_s))
    panels = []
    for kpi in CATALOG:
        if kpi.name not in TREND or not config.kpis[kpi.name].enabled:
            continue
        series = rules.values(kpi)[0]
        selector = SELECTOR.replace("$window", longest)
        panel = _panel(
            f"{series.title} over {longest}",
            [{"expr": f"{series.record}{{{selector}}}", "legendFormat": series.title}],
            series.unit,
            f"Fleet-wide {series.title.lower()} over the rolling {longest} window, drawn across "
            f"the last 30 days (`{series.record}`): the monthly trend.",
        )
        panel["timeFrom"] = "30d"
        panels.append(panel)
    return panels


def health_panels(config: KpiConfig) -> list[dict[str, Any]]:
    alerting = config.alerting
    dead_letters = Alert("above", alerting.dead_letter_ratio, None, 1)
    return [
        _panel(
            "Events/s by outcome",
            [{"expr": f"sum by (outcome) ({health.EVENTS_RATE})", "legendFormat": "{{outcome}}"}],
            "ops",
            "Source records per second: applied, duplicate, late (beyond grace), dead_lettered.",
        ),
        _panel(
            "Late events/s",
            [
                {
                    "expr": f'{health.EVENTS_RATE}{{outcome="late"}}',
                    "legendFormat": "{{topic}}",
                }
            ],
            "ops",
            "Events older than the grace period: counted, not applied.",
        ),
        _panel(
            "Dead-lettered share",
            [{"expr": health.DEAD_LETTER_RATIO, "legendFormat": "{{topic}}"}],
            "percentunit",
            "Share of each topic's records sent to <topic>.dlq over 5m; the line is the "
            "CxkpiDeadLettersHigh threshold.",
            _thresholds(dead_letters),
        ),
        _panel(
            "Consumer lag",
            [
                {
                    "expr": f"sum by (topic) ({health.CONSUMER_LAG})",
                    "legendFormat": "{{topic}}",
                }
            ],
            "short",
            "Records in the source topics not yet processed.",
        ),
        _panel(
            "Stream time behind the clock",
            [{"expr": health.STREAM_DELAY, "legendFormat": "{{topic}}"}],
            "s",
            "How far the slowest partition's event time is behind now.",
        ),
        _panel(
            "Memory per worker",
            [{"expr": f"process_resident_memory_bytes {WORKERS}", "legendFormat": "{{instance}}"}],
            "bytes",
            "Resident memory of each worker process (prometheus_client's process collector).",
        ),
        _panel(
            "CPU per worker",
            [
                {
                    "expr": f"rate(process_cpu_seconds_total[1m]) {WORKERS}",
                    "legendFormat": "{{instance}}",
                }
            ],
            "percentunit",
            "CPU of each worker process, in cores (1 = one core fully used).",
        ),
        _panel(
            "Partitions covered",
            [{"expr": "sum by (topic) (cxkpi_partitions_assigned)", "legendFormat": "{{topic}}"}],
            "short",
            "Partitions owned by scraped workers. KPIs are withheld while a topic's partitions "
            "are not each owned exactly once (CxkpiPartitionsNotCovered).",
        ),
    ]


def _variables(config: KpiConfig) -> list[dict[str, Any]]:
    windows = [window_name(s) for s in config.windows_s]
    default = "1h" if "1h" in windows else windows[0]

    def custom(name: str, options: list[str], current: str) -> dict[str, Any]:
        return {
            "type": "custom",
            "name": name,
            "label": name.capitalize(),
            "query": ",".join(options),
            "current": {"text": current, "value": current},
            "options": [{"text": o, "value": o, "selected": o == current} for o in options],
        }

    return [
        {
            "type": "datasource",
            "name": "datasource",
            "label": "Data source",
            "query": "prometheus",
            "current": {"text": "Prometheus", "value": "prometheus"},
        },
        custom("window", windows, default),
        custom("dimension", ["all", "channel", "region", "team", "priority", "feature"], "all"),
        {
            "type": "query",
            "name": "segment",
            "label": "Segment",
            "datasource": DATASOURCE,
            "query": {
                "query": 'label_values({__name__=~".+:cxkpi_.+:samples|.+:cxkpi_open_backlog_'
                'tickets:sum", dimension="$dimension"}, segment)',
                "refId": "segments",
            },
            "definition": "segments of the chosen dimension",
            "refresh": 2,
            "sort": 1,
            "current": {"text": "all", "value": "all"},
        },
    ]


def _layout(panels: list[dict[str, Any]], y: int) -> int:
    """Place panels in a grid of COLUMNS from row y; returns the next free row."""
    for i, panel in enumerate(panels):
        panel["gridPos"] = {
            "x": (i % COLUMNS) * WIDTH,
            "y": y + (i // COLUMNS) * HEIGHT,
            "w": WIDTH,
            "h": HEIGHT,
        }
    return y + -(-len(panels) // COLUMNS) * HEIGHT


def dashboard(config: KpiConfig) -> dict[str, Any]:
    """The overview dashboard: a row per source topic (the survey replies' voice of the customer
    apart), then the processor's health."""
    sections: list[tuple[str, list[dict[str, Any]]]] = []
    changes = {w.kpi.name: w for w in watches(config.changes())}
    for title, topic, holds in ROWS:
        panels = [
            panel
            for kpi in CATALOG
            if kpi.topic == topic and holds(kpi.name) and config.kpis[kpi.name].enabled
            for panel in kpi_panels(kpi, config.kpis[kpi.name].alert, changes.get(kpi.name))
        ]
        sections.append((title, panels))
    sections.append((f"Trend ({window_name(max(config.windows_s))} windows)", trend_panels(config)))
    sections.append(("Processor health", health_panels(config)))
    all_panels: list[dict[str, Any]] = []
    y = 0
    for title, panels in sections:
        all_panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": y, "w": WIDTH * COLUMNS, "h": 1},
                "panels": [],
            }
        )
        y = _layout(panels, y + 1)
        all_panels.extend(panels)
    annotated: dict[str, list[int]] = {}
    for panel_id, panel in enumerate(all_panels, start=1):
        panel["id"] = panel_id
        if "kpi" in panel:
            annotated.setdefault(panel.pop("kpi"), []).append(panel_id)
    return {
        "uid": UID,
        "title": "Customer experience KPIs",
        "description": "Generated by `cxkpi dashboard` from the KPI configuration file.",
        "tags": ["cxkpi"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": _variables(config)},
        "annotations": {"list": alert_annotations(annotated)},
        "panels": all_panels,
    }


def alert_annotations(panels: dict[str, list[int]]) -> list[dict[str, Any]]:
    """Per KPI, its firing alerts (threshold and change) of the chosen segment, marked on its
    own panels only."""
    return [
        {
            "name": f"{kpi} alerts",
            "datasource": DATASOURCE,
            "enable": True,
            "iconColor": "red",
            "expr": f'ALERTS{{alertstate="firing", service="cxkpi", kpi="{kpi}", {LIVE_SELECTOR}}}',
            "step": "60s",
            "titleFormat": "{{alertname}}",
            "textFormat": "{{dimension}} {{segment}}",
            "filter": {"exclude": False, "ids": ids},
        }
        for kpi, ids in panels.items()
    ]


def render_dashboard(config: KpiConfig) -> str:
    return json.dumps(dashboard(config), indent=2) + "\n"


def panel_queries(document: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) of every query of every panel, for checks against Prometheus."""
    for panel in document["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
