"""The snapshot's `change` section: per KPI with a change alert and per segment, its value over
the short and the confirmation window, the baseline before each, how unusual the difference is
(z, in standard errors) and whether the alert's condition holds (docs/snapshot.md).

It is computed from the same rendered windows as the `windows` section (the change alerts'
own windows among them), with the arithmetic of stream/kpis/change.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from stream.config import window_label
from stream.kpis.change import Comparison, Watch, estimate, unconfigured_windows
from stream.kpis.kinds import KpiValues, Value, named

if TYPE_CHECKING:
    from stream.publish.document import Windows


def extra_windows(watches: Iterable[Watch], configured: Iterable[int]) -> dict[int, frozenset[str]]:
    """The windows the change alerts need that are not configured, each with the KPIs that
    need it (only those are rendered in it)."""
    return {
        key: frozenset(w.kpi.name for w in needing)
        for key, needing in unconfigured_windows(watches, configured).items()
    }


def _cells(values: KpiValues | None) -> dict[tuple[str, str], Value]:
    if values is None:
        return {}
    out: dict[tuple[str, str], Value] = {("overall", ""): values.overall}
    for dimension, by_segment in values.segments.items():
        for segment, value in by_segment.items():
            out[dimension, segment] = value
    return out


def change_json(windows: Windows, watches: Iterable[Watch]) -> dict[str, Any]:
    """The `change` section from rendered windows. A window not complete (rebuilt after a
    restart) counts as having no samples, as /metrics then has none of it either."""
    out: dict[str, Any] = {}
    for watch in watches:
        name = watch.kpi.name
        roles = []
        complete = True
        for key in watch.keys:
            window = windows.get(window_label(key))
            complete = complete and window is not None and window.complete
            usable = window is not None and window.complete
            roles.append(_cells(window.kpis.get(name) if usable else None))
        doc: dict[str, Any] = {"settings": watch.settings_json(), "complete": complete}
        doc["overall"] = _segment(watch, roles, ("overall", ""))
        for dimension in watch.kpi.dimensions:
            present = sorted({seg for cells in roles for dim, seg in cells if dim == dimension})
            doc[dimension] = {seg: _segment(watch, roles, (dimension, seg)) for seg in present}
        out[name] = doc
    return out


def _segment(
    watch: Watch, roles: list[dict[tuple[str, str], Value]], cell: tuple[str, str]
) -> dict[str, Any]:
    def of(role: int) -> Any:
        value = roles[role].get(cell)
        return None if value is None else estimate(watch.estimator, named(value))

    short, confirmation = Comparison(of(0), of(2)), Comparison(of(1), of(3))
    return {
        **short.to_json(),
        "confirmation": confirmation.to_json(),
        "beyond": watch.beyond(short, confirmation),
    }


def named_windows(windows: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The windows of these names only (the configured ones, for the `windows` section)."""
    wanted = set(names)
    return {name: window for name, window in windows.items() if name in wanted}
