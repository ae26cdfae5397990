"""`cxkpi rules` and `cxkpi dashboard`: the monitoring files generated from the KPI
configuration file, written or compared with the ones the repository keeps."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stream.config import ConfigError
from stream.config.kpifile import DEFAULT_CONFIG_PATH
from stream.config.settings import Settings, flags_from

#: `cxkpi rules --format`: the file the repository keeps of each
RULE_FORMATS = {
    "prometheus": "ops/prometheus/rules/cxkpi.rules.yml",
    "prometheus-rule": "deploy/kubernetes/prometheusrule.yaml",
}


def run(args: argparse.Namespace) -> int:
    """`cxkpi rules` and `cxkpi dashboard`: write the generated file, or --check it."""
    from stream.config.kpifile import default_kpi_config
    from stream.monitoring.dashboard import render_dashboard
    from stream.monitoring.rulefile import render_prometheus_rule, render_rules

    settings = Settings.load(flags_from(args))
    config = settings.kpis or default_kpi_config()
    source = config.path.name if config.path.is_absolute() else str(config.path)
    form = getattr(args, "format", None)
    committed = RULE_FORMATS[form] if form else args.committed
    text = (
        render_dashboard(config)
        if args.command == "dashboard"
        else (render_rules if form == "prometheus" else render_prometheus_rule)(config, source)
    )
    if args.check:
        path = args.out or _committed(committed)
        if str(path) == "-":
            raise ConfigError("--check compares with a file: give --out FILE, not -")
        shown = f" --format {form}" if form not in (None, "prometheus") else ""
        command = f"{args.command}{shown}"
        fix = f"run `cxkpi {command} --config {settings.config} --out {path}`"
        if not path.is_file():
            print(f"{path} is missing: {fix}", file=sys.stderr)
            return 1
        if path.read_text(encoding="utf-8") != text:
            print(f"{path} is stale: {fix}", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    if args.out is None or str(args.out) == "-":
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


def _committed(relative: str) -> Path:
    """A generated file the repository keeps: from the working directory, else from the
    installation (as the default cxkpi.toml is found)."""
    path = Path(relative)
    return path if path.exists() else DEFAULT_CONFIG_PATH.parent / relative
