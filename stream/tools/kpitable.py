"""The demo's view of the merged KPIs (`/kpis`): a live table with one column per window, or one
plain line per refresh."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich.table import Table


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "—" if value is None else format(value, spec)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _minutes(v: dict[str, Any]) -> str:
    p50, p90 = v["p50_seconds"], v["p90_seconds"]
    return f"{_fmt(p50 and p50 / 60)} / {_fmt(p90 and p90 / 60)} min  (n={v['count']})"


def _money(v: dict[str, Any]) -> str:
    return "  ".join(f"{cur} {_fmt(m['average'], '.2f')}" for cur, m in v.items()) or "—"


#: (row label, KPI, how to show its overall value) for the live table, in catalog order.
ROWS: tuple[tuple[str, str, Any], ...] = (
    (
        "cart abandonment",
        "cart_abandonment",
        lambda v: f"{_percent(v['ratio'])}  ({v['abandoned']}/{v['abandoned'] + v['converted']})",
    ),
    (
        "checkout abandonment",
        "checkout_abandonment",
        lambda v: f"{_percent(v['ratio'])}  ({v['abandoned']}/{v['abandoned'] + v['converted']})",
    ),
    ("conversion", "conversion", lambda v: f"{_percent(v['ratio'])}  (of {v['created']})"),
    ("average order value", "average_order_value", _money),
    ("upsell", "upsell", lambda v: f"{_percent(v['ratio'])}  (of {v['orders']})"),
    ("resolution p50 / p90", "resolution_time", _minutes),
    ("first response p50 / p90", "first_response_time", _minutes),
    (
        "first-contact resolution",
        "first_contact_resolution",
        lambda v: f"{_percent(v['ratio'])}  (of {v['solves']})",
    ),
    ("reopen rate", "reopen_rate", lambda v: f"{_percent(v['ratio'])}  (of {v['solves']})"),
    (
        "NPS",
        "nps",
        lambda v: (
            f"{_fmt(v['score'], '+.1f')} ± {_fmt(v['margin_of_error'])}  (n={v['responses']})"
        ),
    ),
    (
        "CSAT",
        "csat",
        lambda v: f"{_percent(v['score'] and v['score'] / 100)}  (n={v['responses']})",
    ),
    ("CES (1-7)", "ces", lambda v: f"{_fmt(v['mean'], '.2f')}, {_percent(v['easy_ratio'])} easy"),
)


def kpi_rows(snapshot: dict[str, Any]) -> Iterator[tuple[str, list[str]]]:
    """(KPI, one formatted cell per window) for the live table."""
    windows = snapshot["windows"]
    for label, kpi, show in ROWS:
        yield label, [show(w[kpi]["overall"]) for w in windows.values()]


def kpi_table(snapshot: dict[str, Any] | None) -> Table:
    if snapshot is None:
        return Table(title="waiting for the worker…")
    table = Table(title=f"cxkpi — KPIs valid at {snapshot['valid_at'] or '(no events yet)'}")
    table.add_column("KPI")
    for window in snapshot["windows"]:
        table.add_column(window, justify="right")
    for name, row in kpi_rows(snapshot):
        table.add_row(name, *row)
    backlog = snapshot["live"]["open_backlog"]["overall"]["tickets"]
    events = snapshot["events"]
    table.caption = f"open backlog: {backlog} tickets   events: " + "  ".join(
        f"{t} {c['applied']} applied, {c['dead_lettered']} DLQ" for t, c in events.items()
    )
    return table


def summary_line(snapshot: dict[str, Any] | None) -> str:
    if snapshot is None:
        return "waiting for the worker…"
    first = next(iter(snapshot["windows"]))
    return f"[{snapshot['valid_at']}] {first}: " + "; ".join(
        f"{name} {row[0]}" for name, row in kpi_rows(snapshot)
    )
