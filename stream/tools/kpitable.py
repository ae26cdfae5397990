"""The demo's view of the merged KPIs (`/kpis`): a live table with one column per window, or one
plain line per refresh."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from stream.config import window_name


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
    (
        "net sentiment",
        "sentiment",
        lambda v: f"{_fmt(v['net'], '+.1f')}  (n={v['scored']}, {v['unscored']} unscored)",
    ),
    (
        "net emotion",
        "net_emotion",
        lambda v: f"{_fmt(v['score'], '+.1f')}  (n={v['replies']})",
    ),
    (
        "review rating (1-5)",
        "review_rating",
        lambda v: f"{_fmt(v['mean'], '.2f')}, {_percent(v['good_ratio'])} 4-5  (n={v['reviews']})",
    ),
    ("active users", "active_users", lambda v: str(v["users"])),
    ("session p50 / p90", "session_duration", _minutes),
    ("bounce rate", "bounce_rate", lambda v: f"{_percent(v['ratio'])}  (of {v['sessions']})"),
    (
        "activation",
        "activation_rate",
        lambda v: f"{_percent(v['ratio'])}  (of {v['signups']})",
    ),
)


def engagement_line(snapshot: dict[str, Any]) -> str | None:
    """Stickiness of now (DAU / MAU), or None where it is not published."""
    sticky = snapshot["live"].get("stickiness")
    if sticky is None:
        return None
    v = sticky["overall"]
    return f"stickiness (DAU/MAU): {_percent(v['ratio'])}  ({v['daily']}/{v['monthly']})"


def customer_line(customers: dict[str, Any]) -> str:
    """The customer KPIs of now (live.customers.overall) in one line; what a missing value waits
    for instead of blanks: churn needs customers in the period before, the rest active ones."""
    active, previous = customers["active"], customers["previous"]
    if not active and not previous:
        return "customers: waiting for the first orders of known customers"
    if customers["churn_ratio"] is None:
        kept = "retention, churn and CLV: waiting for customers of the period before"
    else:
        kept = (
            f"retention {_percent(customers['retention_ratio'])}, churn "
            f"{_percent(customers['churn_ratio'])} (of {previous})"
        )
    if customers["purchase_frequency"] is None:
        bought = "repeat purchase and frequency: waiting for orders in this period"
    else:
        bought = (
            f"repeat purchase {_percent(customers['repeat_purchase_ratio'])}, "
            f"{_fmt(customers['purchase_frequency'], '.2f')} orders each"
        )
    values = customers["lifetime_value"].items()
    clv = "  ".join(
        f"{cur} {_fmt(v['lifetime_value'], '.2f')}"
        for cur, v in values
        if v["lifetime_value"] is not None
    )
    return f"customers: {active} active; {kept}; {bought}" + (f"; CLV {clv}" if clv else "")


def _customers(snapshot: dict[str, Any]) -> str | None:
    """The customer line, or None where customer KPIs are disabled (no live.customers)."""
    customers = snapshot["live"].get("customers")
    return None if customers is None else customer_line(customers["overall"])


def kpi_rows(snapshot: dict[str, Any]) -> Iterator[tuple[str, list[str]]]:
    """(KPI, one formatted cell per window) for the live table."""
    windows = snapshot["windows"]
    for label, kpi, show in ROWS:
        yield label, [show(w[kpi]["overall"]) for w in windows.values()]


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


#: How long after its end a step may still be closing (the events of its last moments in flight)
CLOSING_S = 10


def waiting_for(snapshot: dict[str, Any] | None, step_s: int, now_s: float) -> str | None:
    """What the windows still wait for, in words (None once they hold samples): a window holds
    only closed steps, so the first values appear when the first step closes."""
    if snapshot is None:
        return "waiting for the worker to start"
    windows = snapshot["windows"].values()
    kpis = (kpi for w in windows for kpi in w.values() if isinstance(kpi, dict))  # not `complete`
    if any(_has_samples(kpi["overall"]) for kpi in kpis):
        return None
    if not any(c["applied"] for c in snapshot["events"].values()):
        return "waiting for the first events"
    # Stream time follows the clock a little behind: a step that ended moments ago is still
    # closing, not the one after it.
    closes = ((int(now_s) - CLOSING_S) // step_s + 1) * step_s
    step = window_name(step_s)
    if closes <= now_s:
        return f"counting events: values appear as the first {step} step closes, any second now"
    at = datetime.fromtimestamp(closes, UTC).strftime("%H:%M:%S UTC")
    return (
        f"counting events: values appear when the first {step} step closes, "
        f"at {at} (in {closes - int(now_s)} s)"
    )


def _has_samples(value: Any) -> bool:
    """Whether a KPI's components (numbers, maybe nested per currency) count anything."""
    if isinstance(value, dict):
        return any(_has_samples(v) for v in value.values())
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def kpi_table(snapshot: dict[str, Any] | None, waiting: str | None = None) -> Table:
    if snapshot is None:
        return Table(title=waiting or "waiting for the worker…")
    valid = snapshot["valid_at"] or "(no events yet)"
    table = Table(title=f"cxkpi — {waiting}" if waiting else f"cxkpi — KPIs valid at {valid}")
    table.add_column("KPI")
    for window, values in snapshot["windows"].items():
        # a window still filling after a restart with other windows: shown, but marked
        table.add_column(window if values["complete"] else f"{window} (filling)", justify="right")
    for name, row in kpi_rows(snapshot):
        table.add_row(name, *row)
    backlog = snapshot["live"]["open_backlog"]["overall"]["tickets"]
    oldest = snapshot["live"]["backlog_age"]["overall"]["oldest_seconds"]
    events = snapshot["events"]
    table.caption = (
        f"open backlog: {backlog} tickets, the oldest open {_age(oldest)}   events: "
    ) + "  ".join(
        f"{t} {c['applied']} applied, {c['dead_lettered']} DLQ" for t, c in events.items()
    )
    if (customers := _customers(snapshot)) is not None:
        table.caption += f"\n{customers}"
    if (engagement := engagement_line(snapshot)) is not None:
        table.caption += f"\n{engagement}"
    return table


def summary_line(snapshot: dict[str, Any] | None) -> str:
    """One compact line: the first window's KPIs that have a value, then those that have none."""
    if snapshot is None:
        return "waiting for the worker…"
    first = next(iter(snapshot["windows"]))
    shown, empty = [], []
    for name, cells in kpi_rows(snapshot):
        value = cells[0].split("  (")[0]  # without the counts
        if any(c.isdigit() for c in value):
            shown.append(f"{name} {value}")
        else:
            empty.append(name)
    valid_at = (snapshot["valid_at"] or "")[11:19]
    rest = f"; no value yet: {', '.join(empty)}" if empty else ""
    customers = _customers(snapshot)
    line = f"{valid_at} UTC {first}: " + "; ".join(shown) + rest
    return line if customers is None else f"{line} | {customers}"
