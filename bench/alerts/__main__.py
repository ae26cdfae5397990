"""`python -m bench.alerts`: the change alerts over simulated traffic.

1. False alarms: 30 stationary days (after the week of history the baselines need) at the
   generator's volumes (`cxkpi generate`'s 20 events/s by default), per KPI and segment; target:
   at most one alarm per KPI and segment per 30 days (spec, "Change alerts").
2. Detection: injected changes, each lasting 2 h: NPS -15 points at 200 responses an hour (the
   spec's case), and at the generator's volume overall and for one team; cart abandonment +10
   points overall and for one channel. Target: the alert fires within 30 minutes.

The traffic comes from the generator through the real rules (bench/alerts/volumes.py); the
windows and the condition are the snapshot's own arithmetic (bench/alerts/simulate.py), which
the tests show equal to the Prometheus rules. Figures are printed beside their targets, PASS or
FAIL; a missed target is a finding, not a failure of the run (exit 0 unless --strict). The
settings are the KPI file's (`--config`, default cxkpi.toml); --z, --for, ... try others.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from bench.alerts.simulate import Classes, Stationary, drop_delays, stationary
from bench.alerts.volumes import SIMULATED, Calibration, calibrate, library
from bench.report import machine
from stream.config import parse_duration, window_name
from stream.config.settings import Settings
from stream.kpis.change import Watch, watches

MAX_ALARMS = 1  # per KPI and segment per 30 days
MAX_DELAY_MIN = 30
LASTING_MIN = 120


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.alerts", description=__doc__)
    parser.add_argument("--config", default="cxkpi.toml", help="KPI file (default: cxkpi.toml)")
    parser.add_argument("--rate", type=float, default=20.0, help="generator events/s (20)")
    parser.add_argument("--days", type=float, default=30.0, help="stationary days judged (30)")
    parser.add_argument("--trials", type=int, default=100, help="runs per injected change (100)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--entities", type=int, default=20_000, help="calibration entities")
    parser.add_argument("--minutes", type=int, default=4_000, help="distinct simulated minutes")
    for name in ("z", "confirmation_z"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, help="for every KPI")
    parser.add_argument("--min-samples", type=int, help="for every KPI")
    for name in ("short", "confirmation", "baseline", "for"):
        parser.add_argument(f"--{name}", help="a duration, for every KPI")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    return parser


def configured(args: argparse.Namespace) -> list[Watch]:
    """The KPI file's change alerts of the simulated topics, with the command line's figures
    for every KPI."""
    settings = Settings.load({"config": args.config}, environ={})
    changed: dict[str, Any] = {}
    for key, field in (("z", "z"), ("confirmation_z", "confirmation_z")):
        if getattr(args, key) is not None:
            changed[field] = getattr(args, key)
    if args.min_samples is not None:
        changed["min_samples"] = args.min_samples
    for key in ("short", "confirmation", "baseline", "for"):
        if getattr(args, key) is not None:
            changed[f"{key}_s"] = int(parse_duration(getattr(args, key)))
    return [
        w
        for w in watches({name: replace(c, **changed) for name, c in settings.changes.items()})
        if w.kpi.topic in SIMULATED
    ]


def scenarios(watched: list[Watch], calibration: Calibration, lib: Any) -> list[dict[str, Any]]:
    """The injected changes, with the traffic of the series they happen in."""
    by_name = {w.kpi.name: w for w in watched}
    index = {(s.watch.kpi.name, s.label): i for i, s in enumerate(calibration.series)}

    def mean(kpi: str, label: str, component: int) -> float:
        column = lib[index[kpi, label]][component]
        return sum(column) / len(column) * 60  # an hour

    out = []
    if "nps" in by_name:
        nps = by_name["nps"]
        responses, promoters, detractors = (mean("nps", "all", c) for c in range(3))
        p, d = promoters / responses, detractors / responses
        classes = Classes(
            ((1, 1, 0), (1, 0, 0), (1, 0, 1)),  # (responses, promoters, detractors)
            (p, 1 - p - d, d),
            (p - 0.075, 1 - p - d, d + 0.075),  # NPS -15 points
        )
        team = next(s.label for s in calibration.series if s.label.startswith("team="))
        for title, per_hour in (
            ("NPS -15 points, 200 responses/h (the spec's case)", 200.0),
            ("NPS -15 points, overall", responses),
            (f"NPS -15 points, {team}", mean("nps", team, 0)),
        ):
            out.append({"title": title, "watch": nps, "classes": classes, "per_hour": per_hour})
    if "cart_abandonment" in by_name:
        carts = by_name["cart_abandonment"]
        abandoned, converted = (
            mean("cart_abandonment", "all", 0),
            mean("cart_abandonment", "all", 1),
        )
        share = abandoned / (abandoned + converted)
        classes = Classes(((1, 0), (0, 1)), (share, 1 - share), (share + 0.1, 0.9 - share))
        channel = next(s.label for s in calibration.series if s.label.startswith("channel="))
        per_channel = mean("cart_abandonment", channel, 0) + mean("cart_abandonment", channel, 1)
        for title, per_hour in (
            ("cart abandonment +10 points, overall", abandoned + converted),
            (f"cart abandonment +10 points, {channel}", per_channel),
        ):
            out.append({"title": title, "watch": carts, "classes": classes, "per_hour": per_hour})
    return out


def verdict(ok: bool) -> str:
    return "[green]PASS[/green]" if ok else "[red]FAIL[/red]"


def alarm_table(results: list[Stationary], days: float) -> Table:
    table = Table(title=f"False alarms over {days:g} stationary days (target ≤ {MAX_ALARMS})")
    for column in ("KPI", "segment", "samples/h", "alarms", "minutes beyond", ""):
        table.add_column(column, justify="left" if column in ("KPI", "segment") else "right")
    for r in results:
        table.add_row(
            r.series.watch.kpi.name,
            r.series.label,
            f"{r.per_hour:,.0f}",
            str(r.alarms),
            str(r.beyond_minutes),
            verdict(r.alarms <= MAX_ALARMS * days / 30),
        )
    return table


def delay_text(minutes: float | None) -> str:
    return "—" if minutes is None else f"{minutes:.0f} min"


def detection_table(found: list[dict[str, Any]]) -> Table:
    table = Table(
        title=f"Detection of changes lasting {LASTING_MIN // 60} h (target: fires within "
        f"{MAX_DELAY_MIN} min)"
    )
    for column in (
        "change",
        "samples/h",
        "fired ≤ 30 min",
        "median delay",
        "90th pct",
        "never",
        "",
    ):
        table.add_column(column, justify="left" if column == "change" else "right")
    for f in found:
        table.add_row(
            f["title"],
            f"{f['per_hour']:,.0f}",
            f"{f['within'] * 100:.0f} %",
            delay_text(f["median"]),
            delay_text(f["p90"]),
            f"{f['never'] * 100:.0f} %",
            verdict(f["median"] is not None and f["median"] <= MAX_DELAY_MIN),
        )
    return table


def detect(case: dict[str, Any], trials: int, seed: int) -> dict[str, Any]:
    delays = drop_delays(
        case["watch"], case["classes"], case["per_hour"], LASTING_MIN, trials, seed
    )
    fired = sorted(d for d in delays if d is not None)
    never = (len(delays) - len(fired)) / len(delays)
    # a run that never fired counts as later than every one that did
    ranked = fired + [None] * (len(delays) - len(fired))
    return {
        "title": case["title"],
        "kpi": case["watch"].kpi.name,
        "per_hour": case["per_hour"],
        "within": sum(1 for d in fired if d <= MAX_DELAY_MIN) / len(delays),
        "median": ranked[len(ranked) // 2],
        "p90": ranked[int(len(ranked) * 0.9)],
        "mean_fired": statistics.fmean(fired) if fired else None,
        "never": never,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(width=120)
    watched = configured(args)
    c = watched[0].change
    console.print(
        f"Change alerts: |z| ≥ {c.z:g} over {window_name(c.short_s)} and ≥ {c.confirmation_z:g} "
        f"over {window_name(c.confirmation_s)}, against {window_name(c.baseline_s)} baselines, "
        f"min_samples {c.min_samples}, for {window_name(c.for_s) if c.for_s else '0s'} "
        f"(as configured for NPS; {args.config})"
    )
    started = time.perf_counter()
    calibration = calibrate(watched, args.rate, args.entities, args.seed)
    lib = library(calibration, args.minutes, args.seed + 1)
    calibrated = time.perf_counter() - started
    with console.status("simulating stationary days") as status:

        def progress(done: int) -> None:
            status.update(f"stationary days: {done}/{len(calibration.series)} series")

        results = stationary(calibration.series, lib, args.days, args.seed + 2, progress)
    simulated = time.perf_counter() - started - calibrated
    found = [
        detect(case, args.trials, args.seed + 3) for case in scenarios(watched, calibration, lib)
    ]
    console.print(alarm_table(results, args.days))
    console.print(detection_table(found))
    worst = max(results, key=lambda r: r.alarms)
    total = sum(r.alarms for r in results)
    over = [r for r in results if r.alarms > MAX_ALARMS * args.days / 30]
    console.print(
        f"{len(results)} KPI segments, {total} false alarms in all, the most "
        f"{worst.alarms} ({worst.series.watch.kpi.name} {worst.series.label}); "
        f"{len(over)} over the target. Generator at {args.rate:g} events/s, calibrated on "
        f"{args.entities:,} entities per topic through the real rules, {args.minutes:,} "
        f"distinct minutes; {calibrated:.0f} s to calibrate, {simulated:.0f} s to simulate. "
        f"Machine: {machine()['cpu_model']}, {machine()['nproc']} cores."
    )
    failed = [f"alarms {r.series.watch.kpi.name} {r.series.label}" for r in over] + [
        f"delay {f['title']}" for f in found if f["median"] is None or f["median"] > MAX_DELAY_MIN
    ]
    console.print(
        "[red]Targets missed: " + "; ".join(failed) + "[/red]"
        if failed
        else "[green]Every target met.[/green]"
    )
    if args.json:
        document = {
            "settings": {w.kpi.name: w.settings_json() for w in watched},
            "rate": args.rate,
            "days": args.days,
            "alarms": [
                {
                    "kpi": r.series.watch.kpi.name,
                    "segment": r.series.label,
                    "per_hour": r.per_hour,
                    "alarms": r.alarms,
                    "beyond_minutes": r.beyond_minutes,
                }
                for r in results
            ],
            "detection": [{k: v for k, v in f.items()} for f in found],
            "failed": failed,
            "machine": machine(),
        }
        args.json.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
