"""The offline reference: docs/semantics.md computed by brute force over an event log.

Deliberately independent of the `stream` package (no import from it): it classifies records with
the reference JSON Schema validator, builds every sample from scratch per partition, and sums
windows directly. Integration tests compare what the live system publishes against it.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
KEYS = {"cart-events": "cart_id", "tickets": "ticket_id", "survey-replies": "response_id"}
BOUNDS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800)
OUTCOMES = ("applied", "duplicate", "late", "dead_lettered")
TOPIC_DIMENSIONS = {
    "cart-events": ("channel", "region", "currency"),
    "tickets": ("team", "priority", "channel", "region"),
    "survey-replies": ("channel", "region", "team"),
}
_CART, _TICKET, _SURVEY = (
    ("channel", "region"),
    ("channel", "region", "team", "priority"),
    ("channel", "region", "team"),
)
DIMENSIONS = {
    "cart_abandonment": _CART,
    "checkout_abandonment": _CART,
    "conversion": _CART,
    "average_order_value": _CART,
    "upsell": _CART,
    "resolution_time": _TICKET,
    "first_response_time": _TICKET,
    "first_contact_resolution": _TICKET,
    "reopen_rate": _TICKET,
    "open_backlog": _TICKET,
    "nps": _SURVEY,
    "csat": _SURVEY,
    "ces": _SURVEY,
}
WINDOWED_KPIS = [k for k in DIMENSIONS if k != "open_backlog"]
#: kpi -> (numerator, denominator, value key, scale)
FRACTIONS = {
    "conversion": ("converted", "created", "ratio", 1),
    "upsell": ("upsold", "orders", "ratio", 1),
    "first_contact_resolution": ("first_contact", "solves", "ratio", 1),
    "reopen_rate": ("reopens", "solves", "ratio", 1),
    "csat": ("satisfied", "responses", "score", 100),
}


@dataclass(frozen=True)
class Rules:
    step_s: int = 60
    grace_s: int = 300
    windows_s: tuple[int, ...] = (300, 3600, 86400)
    inactivity_timeout_s: int = 1800
    max_segment_values: int = 20
    allow: Mapping[str, frozenset[str]] = field(default_factory=dict)
    max_future_s: int = 3600
    max_event_bytes: int = 65536


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes


@cache
def _validator(topic: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{topic}.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def _ms(text: str) -> int:
    delta = datetime.fromisoformat(text) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _valid_event(record: Record, rules: Rules, now_ms: int) -> dict[str, Any] | None:
    if len(record.value) > rules.max_event_bytes:
        return None
    try:
        event = json.loads(record.value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(event, dict):
        return None
    types = _validator(record.topic).schema["properties"]["type"]["enum"]
    if event.get("type") not in types or not _validator(record.topic).is_valid(event):
        return None
    if event.get("schema_version", 1) != 1:
        return None
    event["_t"] = _ms(event["occurred_at"])
    if event["_t"] > now_ms + rules.max_future_s * 1000:
        return None
    return event


@dataclass
class _Partition:
    """Everything applied on one partition, in processing order."""

    applied: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    stream_time: int | None = None
    first_seen: dict[str, dict[str, int]] = field(default_factory=dict)  # dim -> value -> t
    folded: dict[str, int] = field(default_factory=dict)  # dim -> events folded into other


def _bounded(part: _Partition, rules: Rules, dim: str, value: Any, t: int) -> str | None:
    """The partition-level name of a value (first N seen per partition, or the allow-list)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        return "unknown"
    if dim in rules.allow:
        if value in rules.allow[dim]:
            return value
    else:
        seen = part.first_seen.setdefault(dim, {})
        if value in seen:
            return value
        if value not in ("unknown", "other") and len(seen) < rules.max_segment_values:
            seen[value] = t
            return value
    if value not in ("unknown", "other"):
        part.folded[dim] = part.folded.get(dim, 0) + 1
    return "other"


def _process(records: list[Record], rules: Rules, now_ms: int) -> _Partition:
    part = _Partition()
    step, grace = rules.step_s * 1000, rules.grace_s * 1000
    applied_ids: set[tuple[str, str]] = set()
    for record in sorted(records, key=lambda r: r.offset):
        event = _valid_event(record, rules, now_ms)
        if event is None:
            part.counts["dead_lettered"] += 1
            continue
        t = event["_t"]
        if part.stream_time is not None and (t // step + 1) * step < part.stream_time - grace:
            part.counts["late"] += 1
            continue
        identity = (str(event[KEYS[record.topic]]), event["event_id"])
        if identity in applied_ids:
            part.counts["duplicate"] += 1
            continue
        applied_ids.add(identity)
        part.counts["applied"] += 1
        part.stream_time = t if part.stream_time is None else max(part.stream_time, t)
        event["_seg"] = {
            d: _bounded(part, rules, d, event.get(d), t)
            for d in TOPIC_DIMENSIONS[record.topic]
            if d in event
        }
        part.applied.append(event)
    return part


Sample = tuple[str, str, int | None, dict[str, str], int]  # kpi, component, t, segments, value


def _by_entity(part: _Partition, key: str) -> list[list[dict[str, Any]]]:
    entities: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in part.applied:
        entities[event[key]].append(event)
    return list(entities.values())


def _segs(event: dict[str, Any], dims: tuple[str, ...]) -> dict[str, str]:
    return {d: event["_seg"].get(d) or "unknown" for d in dims}


def _cart_samples(part: _Partition, rules: Rules) -> list[Sample]:
    """Every cart KPI sample of one partition, session by session."""
    timeout = rules.inactivity_timeout_s * 1000
    out: list[Sample] = []
    for events in _by_entity(part, "cart_id"):
        events.sort(key=lambda e: (e["_t"], e["type"] == "order_placed", e["event_id"]))
        sessions: list[list[dict[str, Any]]] = []
        for event in events:
            current = sessions[-1] if sessions else None
            if (
                current is None
                or current[-1]["type"] == "order_placed"
                or event["_t"] - current[-1]["_t"] >= timeout
            ):
                sessions.append([event])
            else:
                current.append(event)
        for session in sessions:
            segs = {
                d: next((e["_seg"][d] for e in session if e["_seg"].get(d)), "unknown")
                for d in ("channel", "region")
            }
            types = [e["type"] for e in session]
            created = [e["_t"] for e in session if e["type"] in ("cart_created", "item_added")]
            if created:
                out.append(("conversion", "created", created[0], segs, 1))
            order = session[-1] if types[-1] == "order_placed" else None
            if order is not None:
                t = order["_t"]
                out.append(("upsell", "orders", t, segs, 1))
                if any(e["type"] == "item_added" and e.get("upsell") for e in session):
                    out.append(("upsell", "upsold", t, segs, 1))
                if order.get("amount") is not None:
                    currency = order["_seg"].get("currency") or "unknown"
                    micros = round(order["amount"] * 1_000_000)
                    out.append(("average_order_value", f"orders:{currency}", t, segs, 1))
                    out.append(("average_order_value", f"amount:{currency}", t, segs, micros))
            if "item_added" not in types:
                continue
            if order is not None:
                at, outcome = order["_t"], "converted"
                out.append(("conversion", "converted", at, segs, 1))
            elif part.stream_time >= session[-1]["_t"] + timeout:
                at, outcome = session[-1]["_t"] + timeout, "abandoned"
            else:
                continue
            out.append(("cart_abandonment", outcome, at, segs, 1))
            if "checkout_started" in types:
                out.append(("checkout_abandonment", outcome, at, segs, 1))
    return out


def _ticket_samples(part: _Partition) -> list[Sample]:
    """Every ticket KPI sample of one partition; tickets without a seen opening give none."""
    out: list[Sample] = []
    for events in _by_entity(part, "ticket_id"):
        events.sort(key=lambda e: (e["_t"], e["event_id"]))
        openings = [e for e in events if e["type"] == "ticket_opened"]
        if not openings:
            continue
        opened = openings[0]["_t"]
        segs = _segs(openings[0], ("channel", "region", "team", "priority"))
        replies = reopens = 0
        for event in events:
            kind, t = event["type"], event["_t"]
            if kind == "agent_replied" and event.get("public", True):
                if replies == 0:
                    out.append(("first_response_time", "samples", t, segs, max(0, t - opened)))
                replies += 1
            elif kind == "ticket_reopened":
                reopens += 1
                out.append(("reopen_rate", "reopens", t, segs, 1))
            elif kind == "ticket_solved":
                out.append(("resolution_time", "samples", t, segs, max(0, t - opened)))
                out.append(("reopen_rate", "solves", t, segs, 1))
                out.append(("first_contact_resolution", "solves", t, segs, 1))
                if replies <= 1 and reopens == 0:
                    out.append(("first_contact_resolution", "first_contact", t, segs, 1))
        statuses = [
            e["type"]
            for e in events
            if e["type"] in ("ticket_opened", "ticket_reopened", "ticket_solved", "ticket_closed")
        ]
        if statuses[-1] in ("ticket_opened", "ticket_reopened"):
            out.append(("open_backlog", "tickets", None, segs, 1))
    return out


def _survey_samples(part: _Partition) -> list[Sample]:
    out: list[Sample] = []
    for event in part.applied:
        t, score, kind = event["_t"], event["score"], event["type"]
        segs = _segs(event, ("channel", "region", "team"))
        if kind == "nps":
            category = "promoters" if score >= 9 else "passives" if score >= 7 else "detractors"
            out.append(("nps", category, t, segs, 1))
        elif kind == "csat":
            out.append(("csat", "responses", t, segs, 1))
            if score >= 4:
                out.append(("csat", "satisfied", t, segs, 1))
        else:
            out.append(("ces", "responses", t, segs, 1))
            out.append(("ces", "score_sum", t, segs, score))
            if score >= 5:
                out.append(("ces", "easy", t, segs, 1))
    return out


def _in_window(t: int, stream_time: int | None, size_s: int, rules: Rules) -> bool:
    if stream_time is None:
        return False
    step = rules.step_s * 1000
    end = (t // step + 1) * step
    return stream_time - size_s * 1000 < end <= stream_time


def _quantile(samples: list[int], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, math.ceil(Fraction(q).limit_denominator(10_000) * len(ordered)))
    return ordered[rank - 1] / 1000


def expected_snapshot(
    records: Iterable[Record], rules: Rules, *, now_ms: int, partitions: Mapping[str, int]
) -> dict[str, Any]:
    """The document of docs/snapshot.md for the given source records."""
    by_partition: dict[tuple[str, int], list[Record]] = defaultdict(list)
    for record in records:
        by_partition[(record.topic, record.partition)].append(record)
    processed = {tp: _process(rs, rules, now_ms) for tp, rs in by_partition.items()}

    # Fleet-wide bound: per dimension, the N values first seen earliest over all partitions.
    first_seen: dict[str, dict[str, int]] = {}
    for part in processed.values():
        for dim, values in part.first_seen.items():
            target = first_seen.setdefault(dim, {})
            for value, t in values.items():
                target[value] = min(t, target.get(value, t))
    kept = {
        dim: sorted(values, key=lambda v: (values[v], v))[: rules.max_segment_values]
        for dim, values in first_seen.items()
    }

    def fleet_name(dim: str, seg: str) -> str:
        if dim in kept and seg not in kept[dim] and seg not in ("unknown", "other"):
            return "other"
        return seg

    # (window or None for live, kpi, dimension, segment) -> component -> list of values
    cells: dict[tuple[str | None, str, str, str], dict[str, list[int]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for (topic, _), part in processed.items():
        samples = {
            "cart-events": lambda p=part: _cart_samples(p, rules),
            "tickets": lambda p=part: _ticket_samples(p),
            "survey-replies": lambda p=part: _survey_samples(p),
        }[topic]()
        for kpi, component, t, segs, value in samples:
            if t is None:
                places: list[str | None] = [None]
            else:
                places = [
                    _window_name(size)
                    for size in rules.windows_s
                    if _in_window(t, part.stream_time, size, rules)
                ]
            for place in places:
                for dim, seg in [("overall", ""), *segs.items()]:
                    cells[(place, kpi, dim, fleet_name(dim, seg))][component].append(value)

    def kpi_doc(place: str | None, kpi: str) -> dict[str, Any]:
        out: dict[str, Any] = {"overall": _render(kpi, cells.get((place, kpi, "overall", ""), {}))}
        for dim in DIMENSIONS[kpi]:
            out[dim] = {
                seg: _render(kpi, values)
                for (p, k, d, seg), values in sorted(cells.items(), key=lambda kv: kv[0][3])
                if p == place and k == kpi and d == dim and any(values.values())
            }
        return out

    times = [p.stream_time for p in processed.values() if p.stream_time is not None]
    return {
        "valid_at": _format(min(times)) if times else None,
        "latest": _format(max(times)) if times else None,
        "partitions": dict(partitions),
        "windows": {
            _window_name(size): {kpi: kpi_doc(_window_name(size), kpi) for kpi in WINDOWED_KPIS}
            for size in rules.windows_s
        },
        "live": {"open_backlog": kpi_doc(None, "open_backlog")},
        "segments": {
            "kept": {dim: sorted(values) for dim, values in sorted(kept.items())},
            "folded_events": {
                topic: dict(sorted(_sum_folded(processed, topic).items())) for topic in partitions
            },
        },
        "events": {
            topic: {
                o: sum(p.counts[o] for (t, _), p in processed.items() if t == topic)
                for o in OUTCOMES
            }
            for topic in partitions
        },
    }


def _sum_folded(processed: Mapping[tuple[str, int], _Partition], topic: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for (t, _), part in processed.items():
        if t == topic:
            for dim, n in part.folded.items():
                out[dim] = out.get(dim, 0) + n
    return out


def _total(values: Mapping[str, list[int]], component: str) -> int:
    return sum(values.get(component, []))


def _div(a: float, b: float) -> float | None:
    return a / b if b else None


def _render(kpi: str, values: Mapping[str, list[int]]) -> dict[str, Any]:
    """The published value of one KPI cell, computed from its raw samples."""
    n = lambda c: _total(values, c)  # noqa: E731
    if kpi in ("cart_abandonment", "checkout_abandonment"):
        return {
            "abandoned": n("abandoned"),
            "converted": n("converted"),
            "ratio": _div(n("abandoned"), n("abandoned") + n("converted")),
        }
    if kpi in FRACTIONS:
        top, bottom, key, scale = FRACTIONS[kpi]
        ratio = _div(n(top), n(bottom))
        return {top: n(top), bottom: n(bottom), key: None if ratio is None else ratio * scale}
    if kpi in ("resolution_time", "first_response_time"):
        return _duration(values.get("samples", []))
    if kpi == "average_order_value":
        currencies = sorted({c.split(":", 1)[1] for c in values})
        return {
            cur: {
                "orders": n(f"orders:{cur}"),
                "amount": n(f"amount:{cur}") / 1_000_000,
                "average": _div(n(f"amount:{cur}") / 1_000_000, n(f"orders:{cur}")),
            }
            for cur in currencies
        }
    if kpi == "open_backlog":
        return {"tickets": n("tickets")}
    if kpi == "ces":
        return {
            "responses": n("responses"),
            "score_sum": n("score_sum"),
            "mean": _div(n("score_sum"), n("responses")),
            "easy": n("easy"),
            "easy_ratio": _div(n("easy"), n("responses")),
        }
    return _nps(n("promoters"), n("passives"), n("detractors"))


def _nps(p: int, q: int, d: int) -> dict[str, Any]:
    total = p + q + d
    margin = None
    if total:
        # adjusted Wald (MeasuringU): add 3 responses, 3/4 of them promoters and detractors
        n_adj = total + 3
        pp, dd = (p + 0.75) / n_adj, (d + 0.75) / n_adj
        margin = 100 * 1.96 * math.sqrt((pp * (1 - pp) + dd * (1 - dd) + 2 * pp * dd) / n_adj)
    return {
        "promoters": p,
        "passives": q,
        "detractors": d,
        "responses": total,
        "score": 100 * (p - d) / total if total else None,
        "margin_of_error": margin,
    }


def _duration(samples: list[int]) -> dict[str, Any]:
    n, total = len(samples), sum(samples)
    buckets = {str(b): sum(1 for s in samples if s <= b * 1000) for b in BOUNDS}
    buckets["+Inf"] = n
    return {
        "count": n,
        "sum_seconds": total / 1000,
        "mean_seconds": total / 1000 / n if n else None,
        "p50_seconds": _quantile(samples, 0.5),
        "p90_seconds": _quantile(samples, 0.9),
        "buckets": buckets,
    }


def _window_name(size: int) -> str:
    for unit, seconds in (("d", 86400), ("h", 3600), ("m", 60)):
        if size % seconds == 0:
            return f"{size // seconds}{unit}"
    return f"{size}s"


def _format(ms: int) -> str:
    moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def compare_snapshots(
    actual: dict[str, Any], expected: dict[str, Any], quantile_rel_tol: float = 0.01
) -> list[str]:
    """Differences between a published snapshot and the expected one ([] when equal)."""
    differences: list[str] = []

    def walk(path: str, a: Any, e: Any) -> None:
        if isinstance(e, dict):
            if not isinstance(a, dict):
                differences.append(f"{path}: {a!r} is not an object")
                return
            for key in sorted(set(a) | set(e)):
                if key not in e:
                    differences.append(f"{path}.{key}: unexpected {a[key]!r}")
                elif key not in a:
                    differences.append(f"{path}.{key}: missing, expected {e[key]!r}")
                else:
                    walk(f"{path}.{key}", a[key], e[key])
            return
        leaf = path.rsplit(".", 1)[-1]
        if a is None or e is None or isinstance(e, str):
            ok = a == e
        elif leaf in ("p50_seconds", "p90_seconds"):
            ok = abs(a - e) <= quantile_rel_tol * abs(e) + 1e-9
        elif isinstance(e, float) or isinstance(a, float):
            ok = math.isclose(a, e, rel_tol=1e-9, abs_tol=1e-9)
        else:
            ok = a == e
        if not ok:
            differences.append(f"{path}: {a!r} != expected {e!r}")

    for key in ("valid_at", "latest", "partitions", "windows", "live", "segments", "events"):
        walk(key, actual.get(key), expected.get(key))
    return differences
