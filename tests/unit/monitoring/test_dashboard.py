"""The generated Grafana dashboard: current with cxkpi.toml, stable, agreeing with the alerts."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from stream.config.kpifile import DEFAULT_CONFIG_PATH, load_kpi_config
from stream.kpis.catalog import CATALOG
from stream.monitoring import dashboard, rules
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
            selector = dashboard.LIVE_SELECTOR if kpi.kind == "live" else dashboard.SELECTOR
            assert f"{series.record}{{{selector}}}" in queries, series.record


def test_threshold_lines_equal_the_alert_thresholds() -> None:
    panels = {p["title"]: p for p in DOCUMENT["panels"]}
    for kpi in CATALOG:
        alert = CONFIG.kpis[kpi.name].alert
        first = rules.values(kpi)[0]
        panel = panels[first.title]
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
    assert rows == ["Commerce", "Support", "Surveys", "Processor health"]
    titles = {p["title"] for p in DOCUMENT["panels"]}
    for title in ("Events/s by outcome", "Late events/s", "Dead-lettered share", "Consumer lag"):
        assert title in titles
    positions = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in DOCUMENT["panels"]]
    assert len(positions) == len(set(positions)), "no two panels overlap"
