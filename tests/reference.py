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
    "cart-events": ("channel", "region"),
    "tickets": ("team", "priority", "channel", "region"),
    "survey-replies": ("channel", "region", "team"),
}
DIMENSIONS = {
    "cart_abandonment": ("channel", "region"),
    "checkout_abandonment": ("channel", "region"),
    "resolution_time": ("channel", "region", "team", "priority"),
    "nps": ("channel", "region", "team"),
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
    seen_values: dict[str, list[str]] = field(default_factory=dict)


def _bounded(part: _Partition, rules: Rules, dim: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        return "unknown"
    if dim in rules.allow:
        return value if value in rules.allow[dim] else "other"
    seen = part.seen_values.setdefault(dim, [])
    if value in seen:
        return value
    if value in ("unknown", "other") or len(seen) >= rules.max_segment_values:
        return "other"
    seen.append(value)
    return value


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
            d: _bounded(part, rules, d, event.get(d))
            for d in TOPIC_DIMENSIONS[record.topic]
            if d in event
        }
        part.applied.append(event)
    return part


def _cart_samples(part: _Partition, rules: Rules) -> list[tuple[int, str, dict[str, str]]]:
    """(outcome time, component, segments) for every cart session with an outcome."""
    timeout = rules.inactivity_timeout_s * 1000
    carts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in part.applied:
        carts[event["cart_id"]].append(event)
    out = []
    for events in carts.values():
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
            if not any(e["type"] == "item_added" for e in session):
                continue
            if session[-1]["type"] == "order_placed":
                at, outcome = session[-1]["_t"], "converted"
            elif part.stream_time >= session[-1]["_t"] + timeout:
                at, outcome = session[-1]["_t"] + timeout, "abandoned"
            else:
                continue
            segs = {
                d: next((e["_seg"][d] for e in session if e["_seg"].get(d)), "unknown")
                for d in ("channel", "region")
            }
            out.append((at, f"cart_{outcome}", segs))
            if any(e["type"] == "checkout_started" for e in session):
                out.append((at, f"checkout_{outcome}", segs))
    return out


def _resolution_samples(part: _Partition) -> list[tuple[int, int, dict[str, str]]]:
    """(solve time, resolution ms, segments) for every solve whose opening is known."""
    tickets: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in part.applied:
        tickets[event["ticket_id"]].append(event)
    out = []
    for events in tickets.values():
        openings = sorted(
            (e for e in events if e["type"] == "ticket_opened"),
            key=lambda e: (e["_t"], e["event_id"]),
        )
        if not openings:
            continue
        opening = openings[0]
        segs = {
            d: opening["_seg"].get(d) or "unknown"
            for d in ("channel", "region", "team", "priority")
        }
        for event in events:
            if event["type"] == "ticket_solved":
                out.append((event["_t"], max(0, event["_t"] - opening["_t"]), segs))
    return out


def _in_window(t: int, stream_time: int | None, size_s: int, rules: Rules) -> bool:
    if stream_time is None:
        return False
    step = rules.step_s * 1000
    end = (t // step + 1) * step
    return stream_time - size_s * 1000 < end <= stream_time


def _segment_keys(segs: Mapping[str, str], dims: tuple[str, ...]) -> list[tuple[str, str]]:
    return [("overall", "")] + [(d, segs[d]) for d in dims]


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

    ratio_parts: dict[tuple[str, str, str, str], dict[str, int]] = defaultdict(
        lambda: {"abandoned": 0, "converted": 0}
    )
    nps_parts: dict[tuple[str, str, str], dict[str, int]] = defaultdict(
        lambda: {"promoters": 0, "passives": 0, "detractors": 0}
    )
    durations: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for (topic, _), part in processed.items():
        for size in rules.windows_s:
            window = _window_name(size)
            if topic == "cart-events":
                for at, component, segs in _cart_samples(part, rules):
                    if _in_window(at, part.stream_time, size, rules):
                        kpi, outcome = component.split("_")
                        for dim, seg in _segment_keys(segs, ("channel", "region")):
                            ratio_parts[(window, f"{kpi}_abandonment", dim, seg)][outcome] += 1
            elif topic == "tickets":
                for at, value, segs in _resolution_samples(part):
                    if _in_window(at, part.stream_time, size, rules):
                        for key in _segment_keys(segs, DIMENSIONS["resolution_time"]):
                            durations[(window, *key)].append(value)
            else:
                for event in part.applied:
                    if event["type"] == "nps" and _in_window(
                        event["_t"], part.stream_time, size, rules
                    ):
                        score = event["score"]
                        category = (
                            "promoters"
                            if score >= 9
                            else "passives"
                            if score >= 7
                            else "detractors"
                        )
                        segs = {d: event["_seg"].get(d) or "unknown" for d in DIMENSIONS["nps"]}
                        for key in _segment_keys(segs, DIMENSIONS["nps"]):
                            nps_parts[(window, *key)][category] += 1

    windows: dict[str, Any] = {}
    for size in rules.windows_s:
        window = _window_name(size)
        kpis: dict[str, Any] = {}
        for kpi in ("cart_abandonment", "checkout_abandonment"):
            kpis[kpi] = _shape(
                kpi,
                lambda dim, seg, k=kpi, w=window: _ratio(ratio_parts.get((w, k, dim, seg))),
                ratio_parts,
                window,
            )
        kpis["resolution_time"] = _shape(
            "resolution_time",
            lambda dim, seg, w=window: _duration(durations.get((w, dim, seg), [])),
            durations,
            window,
        )
        kpis["nps"] = _shape(
            "nps", lambda dim, seg, w=window: _nps(nps_parts.get((w, dim, seg))), nps_parts, window
        )
        windows[window] = kpis

    times = [p.stream_time for p in processed.values() if p.stream_time is not None]
    return {
        "valid_at": _format(min(times)) if times else None,
        "latest": _format(max(times)) if times else None,
        "partitions": dict(partitions),
        "windows": windows,
        "events": {
            topic: {
                o: sum(p.counts[o] for (t, _), p in processed.items() if t == topic)
                for o in OUTCOMES
            }
            for topic in partitions
        },
    }


def _shape(kpi: str, value: Any, store: Mapping[tuple, Any], window: str) -> dict[str, Any]:
    out: dict[str, Any] = {"overall": value("overall", "")}
    for dim in DIMENSIONS[kpi]:
        segments = sorted(
            {
                key[-1]
                for key in store
                if key[0] == window and key[-2] == dim and (len(key) == 3 or key[1] == kpi)
            }
        )
        values = {seg: value(dim, seg) for seg in segments}
        out[dim] = {seg: v for seg, v in values.items() if _nonzero(v)}
    return out


def _nonzero(value: Mapping[str, Any]) -> bool:
    return any(value.get(k) for k in ("abandoned", "converted", "count", "responses"))


def _ratio(parts: Mapping[str, int] | None) -> dict[str, Any]:
    a, c = (parts or {}).get("abandoned", 0), (parts or {}).get("converted", 0)
    return {"abandoned": a, "converted": c, "ratio": a / (a + c) if a + c else None}


def _nps(parts: Mapping[str, int] | None) -> dict[str, Any]:
    p, q, d = ((parts or {}).get(k, 0) for k in ("promoters", "passives", "detractors"))
    n = p + q + d
    return {
        "promoters": p,
        "passives": q,
        "detractors": d,
        "responses": n,
        "score": 100 * (p - d) / n if n else None,
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

    for key in ("valid_at", "latest", "partitions", "windows", "events"):
        walk(key, actual.get(key), expected.get(key))
    return differences
