"""The end of a soak: memory growth after the warm-up, its trend, the verdict, and the report."""

from __future__ import annotations

import statistics
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from stream.tools.soak.measure import KIB_PER_MIB, Sample

if TYPE_CHECKING:
    from stream.tools.soak.run import Soak

SHOWN_ERRORS = 50
#: A backlog of more than this much load is pointed out next to the growth.
BEHIND_NOTE_S = 10.0
#: The linear trend of RSS is printed once it spans this long (shorter, it is mostly noise).
TREND_AFTER_S = 600.0


def warmup_sample(samples: list[Sample], warmup_s: float) -> Sample | None:
    """The first sample with an RSS taken once the warm-up was over."""
    return next((s for s in samples if s.t >= warmup_s and s.rss_kib is not None), None)


def summarize(samples: list[Sample], warmup_s: float) -> dict[str, Any]:
    """RSS at the warm-up and at the end, the growth in between and its trend per hour."""
    measured = [s for s in samples if s.rss_kib is not None]
    warm = warmup_sample(samples, warmup_s)
    end = measured[-1] if measured else None
    summary: dict[str, Any] = {
        "duration_s": max((s.t for s in samples if s.phase == "load"), default=0.0),
        "sent": samples[-1].sent if samples else 0,
        "processed": samples[-1].processed if samples else 0,
        "outcomes": samples[-1].outcomes if samples else {},
        "warmup_s": warmup_s,
        "warmup_t": warm.t if warm else None,
        "rss_warmup_mib": warm.rss_mib if warm else None,
        "rss_end_mib": end.rss_mib if end else None,
        "rss_max_mib": max(s.rss_kib or 0 for s in measured) / KIB_PER_MIB if measured else None,
        "max_backlog": max((s.sent - s.processed for s in samples), default=0),
        "growth_mib": None,
        "growth_percent": None,
        "trend_mib_per_hour": None,
    }
    if warm is not None and end is not None and warm.rss_kib and end.t > warm.t:
        assert end.rss_kib is not None
        summary["growth_mib"] = (end.rss_kib - warm.rss_kib) / KIB_PER_MIB
        summary["growth_percent"] = 100 * (end.rss_kib - warm.rss_kib) / warm.rss_kib
        after = [s for s in measured if s.t >= warm.t]
        if len(after) >= 2:
            slope = statistics.linear_regression(
                [s.t for s in after], [s.rss_kib or 0 for s in after]
            ).slope
            summary["trend_mib_per_hour"] = slope * 3600 / KIB_PER_MIB
    return summary


def verdict(summary: dict[str, Any], error_lines: list[str], max_growth: float) -> list[str]:
    """Why the run failed (nothing when it passed)."""
    failures: list[str] = []
    growth = summary["growth_percent"]
    if growth is None:
        failures.append("the run ended before the warm-up: memory growth was not measured")
    elif growth > max_growth:
        failures.append(
            f"RSS grew {growth:.1f} % ({summary['growth_mib']:+.1f} MiB) after the warm-up, "
            f"more than the allowed {max_growth:g} %"
        )
    dead = summary["outcomes"].get("dead_lettered", 0)
    if dead:
        failures.append(f"{dead} generated events were dead-lettered")
    if error_lines:
        failures.append(f"{len(error_lines)} error lines in the worker's log")
    return failures


def print_summary(soak: Soak, summary: dict[str, Any], failures: list[str]) -> None:
    outcomes = summary["outcomes"]
    shown = ", ".join(f"{k.replace('_', '-')} {v}" for k, v in outcomes.items()) or "none"
    log = soak.log
    errors = log.errors if log else []
    growth = summary["growth_percent"]
    trend = summary["trend_mib_per_hour"]
    warm_at = summary["warmup_t"]
    long_enough = warm_at is not None and summary["duration_s"] - warm_at >= TREND_AFTER_S
    lines = [
        "",
        "soak summary",
        f"  load            {clock(summary['duration_s'])} at {soak.args.rate:g} events/s "
        f"(warm-up {clock(soak.warmup_s)})",
        f"  events          sent {summary['sent']}, processed {summary['processed']} ({shown})",
        f"  backlog         at most {summary['max_backlog']} events sent but not yet processed",
        f"  RSS at warm-up  {mib(summary['rss_warmup_mib'])}"
        + (f" (at {clock(warm_at)})" if warm_at is not None else " (warm-up not reached)"),
        f"  RSS at end      {mib(summary['rss_end_mib'])}",
        f"  RSS max         {mib(summary['rss_max_mib'])}",
        "  growth          "
        + (
            "not measured"
            if growth is None
            else f"{summary['growth_mib']:+.1f} MiB ({growth:+.1f} %) after the warm-up"
            + (f", trend {trend:+.1f} MiB/h" if trend is not None and long_enough else "")
            + f"; allowed {soak.args.max_growth:g} %"
        ),
    ]
    behind_s = summary["max_backlog"] / soak.args.rate
    if behind_s > BEHIND_NOTE_S:
        lines.append(
            f"  note            the worker fell up to {clock(behind_s)} of load behind: RSS then "
            "includes fetched records waiting, so growth is not only state"
        )
    lines.append(
        f"  worker log      {len(errors)} error lines, {log.warnings if log else 0} warnings"
    )
    lines += [f"    {line}" for line in errors[:SHOWN_ERRORS]]
    if len(errors) > SHOWN_ERRORS:
        lines.append(f"    … and {len(errors) - SHOWN_ERRORS} more")
    lines += [f"FAIL: {reason}" for reason in failures] or [
        "PASS: memory stayed flat, every event processed, no errors"
    ]
    print("\n".join(lines), flush=True)


def write_report(path: Path, soak: Soak, summary: dict[str, Any], failures: list[str]) -> None:
    settings = soak.settings.describe() if soak.settings else {}
    report = {
        "rate": soak.args.rate,
        "duration_s": soak.args.duration,
        "warmup_s": soak.warmup_s,
        "sample_every_s": soak.args.sample_every,
        "max_growth_percent": soak.args.max_growth,
        "settings": settings,
        "worker_pid": soak.worker_pid,
        "samples": [{**asdict(s), "rss_mib": s.rss_mib} for s in soak.samples],
        "summary": summary,
        "error_lines": soak.log.errors if soak.log else [],
        "failures": failures,
    }
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


def clock(seconds: float) -> str:
    """90.5 -> '1m30s'; 3600 -> '1h00m00s'."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def clock_list(values: tuple[int, ...]) -> str:
    return ",".join(clock(v) for v in values)


def mib(value: float | None) -> str:
    return "      — MiB" if value is None else f"{value:7.1f} MiB"
