"""The generated Grafana dashboard: current with cxkpi.toml, stable, agreeing with the alerts."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import yaml

from stream.config.kpifile import DEFAULT_CONFIG_PATH, load_kpi_config
from stream.kpis.catalog import CATALOG
from stream.kpis.change import watches
from stream.monitoring import change, dashboard, rules
from stream.state.windows import window_name

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "ops/grafana/dashboards/cxkpi-overview.json"
CONFIG = load_kpi_config(DEFAULT_CONFIG_PATH)
DOCUMENT = json.loads(COMMITTED.read_text())


def test_committed_dashboard_is_generated_from_the_config() -> None:
    assert COMMITTED.read_text() == dashboard.render_dashboard(CONFIG), (
        "ops/grafana/dashboards/cxkpi-overview.json is stale: run `make monitoring`"
    )


def test_uid_is_stable_and_variables_select_window_dimension_segment() -> None:
    assert DOCUMENT["uid"] == "cxkpi-overview"
    variables = {v["name"]: v for v in DOCUMENT["templating"]["list"]}
    assert set(variables) == {"datasource", "window", "dimension", "segment"}
    assert variables["window"]["query"].split(",") == [window_name(s) for s in CONFIG.windows_s]
    assert "$dimension" in variables["segment"]["query"]["query"]


def test_every_recorded_kpi_value_has_a_panel_querying_its_rule() -> None:
    queries = "\n".join(expr for _, expr in dashboard.panel_queries(DOCUMENT))
    recorded = {
        r["record"]
        for g in yaml.safe_load((ROOT / "ops/prometheus/rules/cxkpi.rules.yml").read_text())[
            "groups"
        ]
        for r in g["rules"]
        if "record" in r
    }
    for kpi in CATALOG:
        for series in rules.values(kpi):
            assert series.record in recorded
            selector = dashboard.LIVE_SELECTOR if kpi.is_live else dashboard.SELECTOR
            assert f"{series.record}{{{selector}}}" in queries, series.record


def test_threshold_lines_equal_the_alert_thresholds() -> None:
    panels = {p["title"]: p for p in DOCUMENT["panels"]}
    for kpi in CATALOG:
        alert = CONFIG.kpis[kpi.name].alert
        first = rules.values(kpi)[0]
        selector = dashboard.LIVE_SELECTOR if kpi.is_live else dashboard.SELECTOR
        panel = next(  # the panel that draws the alerted value (customers: beside retention)
            p
            for p in panels.values()
            if any(t["expr"] == f"{first.record}{{{selector}}}" for t in p.get("targets", []))
        )
        custom = panel["fieldConfig"]["defaults"]["custom"]
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        if alert is None:
            assert custom["thresholdsStyle"]["mode"] == "off"
            continue
        assert custom["thresholdsStyle"]["mode"] == "line"
        assert steps[1]["value"] == alert.threshold
        bad = steps[1]["color"] if alert.kind != "below" else steps[0]["color"]
        assert bad == "red"


def test_processor_health_row() -> None:
    rows = [p["title"] for p in DOCUMENT["panels"] if p["type"] == "row"]
    assert rows == [
        "Commerce",
        "Support",
        "Surveys",
        "Voice of the customer",
        "Engagement",
        "Customers",
        "Trend (30d windows)",
        "Processor health",
    ]
    titles = {p["title"] for p in DOCUMENT["panels"]}
    for title in (
        "Events/s by outcome",
        "Late events/s",
        "Dead-lettered share",
        "Consumer lag",
        "Memory per worker",
        "CPU per worker",
    ):
        assert title in titles
    positions = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in DOCUMENT["panels"]]
    assert len(positions) == len(set(positions)), "no two panels overlap"


def test_trend_row_shows_the_monthly_kpis_over_the_longest_window_across_30_days() -> None:
    """The window variable offers the long windows; the trend row is fixed to the longest."""
    variables = {v["name"]: v for v in DOCUMENT["templating"]["list"]}
    assert variables["window"]["query"] == "5m,1h,24h,7d,30d"
    trend = {p["title"]: p for p in DOCUMENT["panels"] if p["title"].endswith(" over 30d")}
    assert set(trend) == {
        "NPS over 30d",
        "CSAT (%) over 30d",
        "Cart abandonment over 30d",
        "Resolution time p90 over 30d",
    }
    for panel in trend.values():
        assert panel["timeFrom"] == "30d"
        (target,) = panel["targets"]
        assert 'window="30d", dimension="$dimension", segment="$segment"' in target["expr"]


def test_backlog_age_has_the_oldest_ticket_with_its_alert_line_and_the_age_histogram() -> None:
    panels = {p["title"]: p for p in DOCUMENT["panels"]}
    oldest = panels["Oldest open ticket"]
    assert oldest["targets"][0]["expr"].startswith(
        "dimension_segment:cxkpi_backlog_oldest_age_seconds:max{"
    )
    steps = oldest["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[1]["value"] == CONFIG.kpis["backlog_age"].alert.threshold == 7 * 86400
    by_age = panels["Open tickets by age"]["targets"][0]
    assert by_age["expr"].startswith("dimension_segment:cxkpi_backlog_age_seconds_bucket:sum{")


def test_the_voice_of_the_customer_row_holds_sentiment_emotion_and_reviews() -> None:
    """What customers say and feel has its own row, after the scores they give."""
    panels = DOCUMENT["panels"]
    starts = [i for i, p in enumerate(panels) if p["type"] == "row"] + [len(panels)]
    rows = {panels[a]["title"]: panels[a + 1 : b] for a, b in itertools.pairwise(starts)}
    voice = " ".join(t["expr"] for p in rows["Voice of the customer"] for t in p["targets"])
    surveys = " ".join(t["expr"] for p in rows["Surveys"] for t in p["targets"])
    for kpi in ("sentiment", "net_emotion", "review_rating"):
        assert f"cxkpi_{kpi}:" in voice and f"cxkpi_{kpi}:" not in surveys, kpi
    for kpi in ("nps", "csat", "ces"):
        assert f"cxkpi_{kpi}:" in surveys and f"cxkpi_{kpi}:" not in voice, kpi


def test_each_changed_kpi_panel_shows_its_baseline_and_a_two_standard_error_band() -> None:
    """The panel of the value a change alert tests (a duration's mean, not its p90) draws the
    value over the short window, the baseline, and baseline ± 2 standard errors, shaded."""
    panels = [p for p in DOCUMENT["panels"] if p["type"] == "timeseries"]
    for watch in watches(CONFIG.changes()):
        tested = rules.values(watch.kpi)[change.tested_series(watch, rules.values(watch.kpi))]
        panel = next(p for p in panels if p["targets"][0]["expr"].startswith(f"{tested.record}{{"))
        exprs = [t["expr"] for t in panel["targets"]]
        where = '{dimension="$dimension", segment="$segment"}'
        baseline, stderr = change.record(watch, "baseline"), change.record(watch, "stderr")
        assert exprs[1:] == [
            f"{change.record(watch, 'short')}{where}",
            f"{baseline}{where}",
            f"{baseline}{where} - 2 * {stderr}{where}",
            f"{baseline}{where} + 2 * {stderr}{where}",
        ], watch.kpi.name
        fill = panel["fieldConfig"]["overrides"][0]
        assert fill["matcher"]["options"] == "baseline + 2 SE"
        assert {"id": "custom.fillBelowTo", "value": "baseline - 2 SE"} in fill["properties"]
    mean = next(p for p in panels if p["title"] == "Resolution time mean")
    assert len(mean["targets"]) == 5
    assert len(next(p for p in panels if p["title"] == "Resolution time p90")["targets"]) == 1


def test_each_kpi_panel_is_annotated_with_its_own_alerts_of_the_chosen_segment() -> None:
    annotations = {a["name"]: a for a in DOCUMENT["annotations"]["list"]}
    by_id = {p["id"]: p for p in DOCUMENT["panels"]}
    nps = annotations["nps alerts"]
    assert nps["expr"] == (
        'ALERTS{alertstate="firing", service="cxkpi", kpi="nps", '
        'dimension="$dimension", segment="$segment"}'
    )
    titles = {by_id[i]["title"] for i in nps["filter"]["ids"]}
    assert titles == {"NPS"}
    assert {by_id[i]["title"] for i in annotations["ces alerts"]["filter"]["ids"]} == {
        "CES (mean, 1-7)",
        "CES: share easy (5-7)",
    }
    annotated = {i for a in annotations.values() for i in a["filter"]["ids"]}
    health = {p["id"] for p in DOCUMENT["panels"] if p["title"] == "Consumer lag"}
    assert not annotated & health
    assert set(annotations) == {f"{k.name} alerts" for k in CATALOG}
