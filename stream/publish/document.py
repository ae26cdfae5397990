"""The snapshot document (docs/snapshot.md): merged entries rendered by the KPIs' kinds.

The same rendering builds the Redis snapshot, the JSON endpoint and the Prometheus families:
the windowed and live KPIs are first rendered as typed values (`Windows`, `KpiValues`), which
the document turns into JSON and /metrics into metric families.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from stream.config import window_label
from stream.contract.schemas import SOURCE_TOPICS
from stream.kpis.catalog import LIVE, STICKINESS, STICKY_DAILY, STICKY_MONTHLY, WINDOWED, Kpi
from stream.kpis.change import Watch
from stream.kpis.customers import MAX_LIFETIME_PERIODS
from stream.kpis.kinds import Adoption, KpiValues, Options
from stream.publish.change import change_json, extra_windows, named_windows
from stream.publish.entries import Entry, WindowTotals, window_copies
from stream.publish.merge import (
    AGES,
    Grouped,
    Keep,
    Merged,
    SegmentSeries,
    ages_grouped,
    by_measure,
    fold,
    merge,
    sum_windows,
    widen,
)
from stream.state.partition import OUTCOMES, PartitionState
from stream.state.segments import Admitted, fleet_names, merge_admitted
from stream.state.windows import Totals

#: Whether a KPI is switched on in the configuration file, by name.
Enabled = Callable[[str], bool]


def _all(kpi: str) -> bool:
    return True


def format_time(ms: int | None) -> str | None:
    """Epoch milliseconds as RFC 3339 UTC with milliseconds and Z."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass(slots=True)
class Window:
    """The windowed KPIs of one window, and why it is not complete (None: it is)."""

    reason: str | None
    kpis: dict[str, KpiValues]

    @property
    def complete(self) -> bool:
        return self.reason is None

    def to_json(self) -> dict[str, Any]:
        head: dict[str, Any] = {"complete": self.reason is None}
        if self.reason is not None:
            head["reason"] = self.reason
        return {**head, **{name: values.to_json() for name, values in self.kpis.items()}}


#: Rendered windowed KPIs by window name.
Windows = dict[str, Window]


def windows_json(windows: Windows, windows_ms: Iterable[int]) -> dict[str, dict[str, Any]]:
    """The document's `windows` section: the configured windows (not those only the change
    alerts need)."""
    shown = named_windows(windows, (window_label(key) for key in windows_ms))
    return {name: window.to_json() for name, window in shown.items()}


def sections(
    windows: Windows, windows_ms: Iterable[int], watches: Sequence[Watch]
) -> dict[str, Any]:
    """The document's sections rendered from windows: `windows` and `change`."""
    return {"windows": windows_json(windows, windows_ms), "change": change_json(windows, watches)}


def render(
    merged: Merged,
    windows_ms: Iterable[int],
    partitions: Mapping[str, int],
    *,
    max_values: int,
    admitted: Admitted | None = None,
    enabled: Enabled = _all,
    windows: Any = None,
    max_lifetime_periods: int = MAX_LIFETIME_PERIODS,
    watches: Sequence[Watch] = (),
    sticky: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The snapshot document, with segment values beyond the fleet-wide bound folded to other.

    `admitted` is the fleet's admitted values when `merged` covers only some partitions (a
    worker's /metrics), so that every worker folds the same values. KPIs switched off in the
    configuration file (`enabled`) are left out. `windows`, when given, is the `windows` and
    `change` sections already rendered as JSON (Shape.windows), used instead of rendering
    `merged.windows`. `max_lifetime_periods` caps a customer's expected lifetime in the
    lifetime value. `watches` are the change alerts, whose figures the `change` section holds.
    `sticky` is stickiness as JSON (from the windows, `stickiness`) where `windows` is
    pre-serialized.
    """
    keep = fleet_names(merged.admitted if admitted is None else admitted, max_values)
    live = live_kpis(merged, keep, partitions, enabled, max_lifetime_periods)
    times = merged.stream_times
    if windows is None:
        extra = extra_windows(watches, windows_ms)
        rendered = render_windows(
            merged.windows, windows_ms, keep, enabled, merged.incomplete, extra
        )
        windows = sections(rendered, windows_ms, watches)
    live_json = {name: values.to_json() for name, values in live.items()}
    if enabled(STICKINESS.name) and STICKINESS.topic in partitions:  # read from the windows
        if sticky is None and isinstance(windows["windows"], Mapping):
            values = stickiness(windows["windows"])
            sticky = None if values is None else values.to_json()
        if sticky is not None:  # else withheld while a window fills
            live_json[STICKINESS.name] = sticky
    return {
        "valid_at": format_time(min(times)) if times else None,
        "latest": format_time(max(times)) if times else None,
        "partitions": dict(partitions),
        "windows": windows["windows"],
        "change": windows["change"],
        "live": live_json,
        "segments": {
            "kept": {d: sorted(v) for d, v in sorted(keep.items())},
            "folded_events": {
                topic: dict(sorted(merged.folded.get(topic, {}).items())) for topic in partitions
            },
        },
        "events": {
            topic: dict(merged.counts.get(topic, dict.fromkeys(OUTCOMES, 0)))
            for topic in partitions
            if topic in SOURCE_TOPICS
        },
        "processed": {
            topic: {str(n): merged.processed.get(topic, {}).get(n, 0) for n in range(count)}
            for topic, count in partitions.items()
        },
    }


def live_kpis(
    merged: Merged,
    keep: Keep,
    partitions: Mapping[str, int],
    enabled: Enabled = _all,
    max_lifetime_periods: int = MAX_LIFETIME_PERIODS,
) -> dict[str, KpiValues]:
    """The KPIs of now of the topics read (the customers topic only with customer KPIs on),
    the customer KPIs evaluated at the customers partitions' stream time."""
    live = by_measure(fold(merged.live, keep))
    live[AGES] = ages_grouped(merged.ages, keep)  # replaces the per-partition opening sums
    options = Options(max_lifetime_periods, format_time(min(merged.customer_times, default=None)))
    return {
        kpi.name: render_kpi(kpi, live, options)
        for kpi in LIVE
        if enabled(kpi.name) and kpi.topic in partitions and kpi is not STICKINESS
    }


def stickiness(windows: Mapping[str, Any]) -> KpiValues | None:
    """Stickiness from the windows section (JSON): per segment, the 24 h window's active users
    over the 30 d window's. A window not configured counts 0; while either is still filling
    after a rebuild it is withheld (None), as a partial window is: its counts would be wrong."""
    kpi = STICKINESS
    (_, day, day_ms), (_, month, month_ms) = STICKY_DAILY, STICKY_MONTHLY
    docs = [windows.get(window_label(size)) for size in (day_ms, month_ms)]
    if any(doc is not None and not doc.get("complete", True) for doc in docs):
        return None
    users = [{} if doc is None else doc.get("active_users", {}) for doc in docs]

    def value(dim: str, seg: str) -> Any:
        counts = [(u.get("overall") if dim == "" else u.get(dim, {}).get(seg)) or {} for u in users]
        series = {(day, -1): counts[0].get("users", 0), (month, -1): counts[1].get("users", 0)}
        return kpi.kind.value(kpi, series, Options())

    segments = {
        dim: {
            seg: value(dim, seg) for seg in sorted({*users[0].get(dim, {}), *users[1].get(dim, {})})
        }
        for dim in kpi.dimensions
    }
    return KpiValues(value("", ""), segments)


@dataclass(frozen=True)
class Shape:
    """What a snapshot document holds, as configured: its windows, the partitions of each
    topic, the bound on segment values, and the KPIs switched on."""

    windows_ms: tuple[int, ...]
    partitions: Mapping[str, int]
    max_values: int
    enabled: Enabled = _all
    max_lifetime_periods: int = MAX_LIFETIME_PERIODS
    #: the change alerts (of the KPIs switched on)
    watches: tuple[Watch, ...] = ()

    @property
    def extra(self) -> dict[int, frozenset[str]]:
        """The windows only the change alerts need, with the KPIs rendered in each."""
        return extra_windows(self.watches, self.windows_ms)

    @property
    def keys(self) -> tuple[int, ...]:
        """Every window key the partitions hold: configured, then the change alerts' own."""
        return (*self.windows_ms, *self.extra)

    def current(self, entries: Iterable[Entry]) -> list[Entry]:
        """The entries of partitions still configured (a topic may once have had more)."""
        return [e for e in entries if e.partition < self.partitions.get(e.topic, 0)]

    def document(
        self,
        entries: Iterable[Entry],
        admitted: Admitted | None = None,
        windows: Any = None,
        sticky: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The merged document of the entries (see `render`)."""
        return render(
            merge(self.current(entries)),
            self.windows_ms,
            self.partitions,
            max_values=self.max_values,
            admitted=admitted,
            enabled=self.enabled,
            windows=windows,
            max_lifetime_periods=self.max_lifetime_periods,
            watches=self.watches,
            sticky=sticky,
        )

    def stamp(
        self, document: dict[str, Any], entries: Iterable[Entry], published_at: int, writer: str
    ) -> dict[str, Any]:
        """The document with when (epoch ms) and by which worker it is written, and since when
        every partition's entry in it was, by its owner (null while some entry does not say: an
        earlier version's). A worker may write the document while another is dead, from the dead
        one's entries as they were left: `published_at` then moves on, while this and
        `valid_at` stand still, as the data they describe does."""
        times = [e.published_at for e in self.current(entries)]
        known = [t for t in times if t is not None]
        document["published_at"] = format_time(published_at)
        document["writer"] = writer
        document["partitions_published_at"] = (
            format_time(min(known)) if known and len(known) == len(times) else None
        )
        return document

    def live(
        self, entries: Iterable[Entry], admitted: Admitted | None = None
    ) -> dict[str, KpiValues]:
        """The live KPIs of the entries, as in their document (see `render`)."""
        merged = merge(self.current(entries))
        keep = fleet_names(merged.admitted if admitted is None else admitted, self.max_values)
        return live_kpis(merged, keep, self.partitions, self.enabled, self.max_lifetime_periods)

    def keep(self, entries: Iterable[Entry]) -> dict[str, frozenset[str]]:
        """Per dimension, the segment values of these entries that keep their name."""
        admitted = merge_admitted([e.segments for e in self.current(entries)])
        return fleet_names(admitted, self.max_values)

    def windows(
        self, totals: Iterable[WindowTotals], entries: Iterable[Entry], keep: Keep
    ) -> dict[str, dict[str, Any]]:
        """The `windows` and `change` sections (as JSON) of partitions' window totals;
        `entries` (of the same partitions) say which windows are not filled yet."""
        incomplete: dict[int, list[int]] = {}
        for entry in self.current(entries):
            for size, since, complete_at in entry.incomplete:
                widen(incomplete, size, since, complete_at)
        rendered = render_windows(
            sum_windows(totals), self.windows_ms, keep, self.enabled, incomplete, self.extra
        )
        return sections(rendered, self.windows_ms, self.watches)


def render_windows(
    windows: Mapping[int, Totals],
    windows_ms: Iterable[int],
    keep: Keep,
    enabled: Enabled = _all,
    incomplete: Mapping[int, list[int]] | None = None,
    extra: Mapping[int, frozenset[str]] | None = None,
) -> Windows:
    """The windowed KPIs of merged window totals, per window name, segments beyond `keep`
    folded to other; a window some partition has not filled yet says so and why. `extra`
    windows (those only change alerts need) hold only the KPIs named for them."""
    grouped = {key: by_measure(fold(totals, keep)) for key, totals in windows.items()}
    incomplete = incomplete or {}
    options = Options()
    shown: dict[int, frozenset[str] | None] = dict.fromkeys(windows_ms)
    for key, names in (extra or {}).items():
        shown.setdefault(key, names)
    return {
        window_label(key): Window(
            _reason(incomplete.get(key)),
            {
                kpi.name: render_kpi(kpi, grouped.get(key, {}), options)
                for kpi in WINDOWED
                if enabled(kpi.name) and (names is None or kpi.name in names)
            },
        )
        for key, names in shown.items()
    }


def _reason(span: list[int] | None) -> str | None:
    if span is None:
        return None
    since, complete_at = span
    return (
        f"rebuilt after a restart with other windows or steps: holds the events from "
        f"{format_time(since)} on; complete once stream time reaches {format_time(complete_at)}"
    )


def window_versions(states: Iterable[PartitionState]) -> tuple[int, ...]:
    """Changes whenever a window total (or whether it is complete, which changes only as the
    window slides) of any of the states may have changed."""
    return tuple(w.version for state in states for w in state.windows)


def window_renderer(
    states: Iterable[PartitionState],
    windows_ms: Iterable[int],
    keep: Keep,
    enabled: Enabled = _all,
    extra: Mapping[int, frozenset[str]] | None = None,
) -> Callable[[], Windows]:
    """Copies of the states' window totals, and a function that renders their windowed KPIs from
    the copies alone, so that it may run in another thread while the states change."""
    states = list(states)
    copies = [window_copies(state) for state in states]
    sizes = tuple(windows_ms)
    incomplete: dict[int, list[int]] = {}
    for state in states:
        for size, (since, complete_at) in state.incomplete().items():
            widen(incomplete, size, since, complete_at)

    def render() -> Windows:
        return render_windows(sum_windows(copies), sizes, keep, enabled, incomplete, extra)

    return render


def render_kpi(kpi: Kpi, grouped: Grouped, options: Options | None = None) -> KpiValues:
    """One KPI: overall plus a map per segment dimension of the segments with data."""
    options = options or Options()
    by_segment: dict[tuple[str, str], SegmentSeries] = {}
    for measure in {measure for _, measure in kpi.parts}:
        for segment, series in grouped.get(measure, {}).items():
            by_segment.setdefault(segment, {}).update(series)
    overall = by_segment.pop(("", ""), {})
    kind = kpi.kind
    if isinstance(kind, Adoption):  # its segments divide by the overall series
        options = replace(options, overall=overall)
    segments = {
        dimension: {
            seg: kind.value(kpi, series, options)
            for (dim, seg), series in sorted(by_segment.items())
            if dim == dimension
        }
        for dimension in kpi.dimensions
    }
    return KpiValues(kind.value(kpi, overall, options), segments)
