"""Change alerts' arithmetic: how far a KPI's value over a window is from its baseline, in
standard errors (spec, "Change alerts"; docs/monitoring.md).

For a KPI whose kind has an `Estimator`, a window's summed components give n, the value x and
the variance of one sample; against the baseline (the window of `baseline` that ends where the
tested one starts, so the two never overlap):

    z = (x_window - x_baseline) / sqrt(var_window / n_window + var_baseline / n_baseline)

It is computed twice over: here for the snapshot (stream/publish/change.py), and as Prometheus
recording rules over the fleet's summed components (stream/monitoring/change.py); the
integration tests show the two agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stream.config import lagged_window, window_name
from stream.config.change import Change
from stream.kpis.catalog import CATALOG, Kpi
from stream.kpis.kinds import Estimator


@dataclass(frozen=True, slots=True)
class Estimate:
    """A KPI over one window: its samples, its value and the variance of one sample, both on
    the published scale (NPS points, CSAT percent, seconds, ...)."""

    samples: float
    value: float
    variance: float


def estimate(estimator: Estimator, named: Mapping[str, float]) -> Estimate | None:
    """The estimate from components by name; None without samples. Variances below 0 (a
    reopen rate above 1, rounding) count as 0, as `clamp_min` does in the rules."""
    n = sum(named.get(c, 0) for c in estimator.count)
    if n <= 0:
        return None
    x = named.get(estimator.first, 0) / n
    if estimator.form == "proportion":
        variance = x * (1 - x)
    elif estimator.form == "net":
        bottom = named.get(estimator.second, 0) / n
        net = x - bottom
        variance = x + bottom - net * net
        x = net
    elif estimator.form == "mean":
        variance = named.get(estimator.second, 0) / n - x * x
    else:
        raise ValueError(f"unknown estimator form {estimator.form!r}")
    scale = estimator.scale
    return Estimate(n, scale * x, scale * scale * max(variance, 0.0))


@dataclass(frozen=True, slots=True)
class Comparison:
    """A window against its baseline: the difference in standard errors (z; infinite when
    both hold constant but different samples, None when there is nothing to compare)."""

    window: Estimate | None
    baseline: Estimate | None

    @property
    def stderr(self) -> float | None:
        """The standard error of the difference, on the published scale."""
        w, b = self.window, self.baseline
        if w is None or b is None:
            return None
        return math.sqrt(w.variance / w.samples + b.variance / b.samples)

    @property
    def z(self) -> float | None:
        stderr = self.stderr
        if stderr is None:
            return None
        assert self.window is not None and self.baseline is not None
        difference = self.window.value - self.baseline.value
        if stderr > 0:
            return difference / stderr
        return math.copysign(math.inf, difference) if difference else None

    def to_json(self) -> dict[str, Any]:
        w, b = self.window, self.baseline
        return {
            "value": None if w is None else w.value,
            "samples": 0 if w is None else w.samples,
            "baseline": None if b is None else b.value,
            "baseline_samples": 0 if b is None else b.samples,
            "stderr": self.stderr,
            "z": json_number(self.z),
        }


def json_number(x: float | None) -> float | str | None:
    """A number for JSON: infinities as Prometheus' API writes them ('+Inf', '-Inf')."""
    if x is None or math.isfinite(x):
        return x
    return "+Inf" if x > 0 else "-Inf"


@dataclass(frozen=True)
class Watch:
    """A KPI's change alert: its settings, resolved direction and estimator."""

    kpi: Kpi
    change: Change
    estimator: Estimator

    @property
    def direction(self) -> str:
        return self.change.direction or self.kpi.worse

    @property
    def keys(self) -> tuple[int, int, int, int]:
        """Window keys (ms): short, confirmation, and the baseline ending where each starts."""
        c = self.change
        return (
            c.short_s * 1000,
            c.confirmation_s * 1000,
            lagged_window(c.baseline_s, c.short_s),
            lagged_window(c.baseline_s, c.confirmation_s),
        )

    def beyond(self, short: Comparison, confirmation: Comparison) -> bool:
        """Whether the alert's condition holds now (before its `for`): |z| beyond both
        thresholds in the watched direction, with min_samples in the short window and in its
        baseline."""
        c = self.change
        z, zc = short.z, confirmation.z
        if z is None or zc is None or short.window is None or short.baseline is None:
            return False
        if min(short.window.samples, short.baseline.samples) < c.min_samples:
            return False
        down = z <= -c.z and zc <= -c.confirmation_z
        up = z >= c.z and zc >= c.confirmation_z
        return {"down": down, "up": up, "both": down or up}[self.direction]

    def settings_json(self) -> dict[str, Any]:
        c = self.change
        return {
            "short": window_name(c.short_s),
            "confirmation": window_name(c.confirmation_s),
            "baseline": window_name(c.baseline_s),
            "z": c.z,
            "confirmation_z": c.confirmation_z,
            "min_samples": c.min_samples,
            "direction": self.direction,
        }


def watches(changes: Mapping[str, Change], catalog: Iterable[Kpi] = CATALOG) -> list[Watch]:
    """The change alerts of the catalogue's KPIs that have one configured, in catalogue order.
    A configured KPI without an estimator is a configuration the file's check should have
    refused: it raises."""
    out = []
    for kpi in catalog:
        change = changes.get(kpi.name)
        if change is None:
            continue
        estimator = kpi.kind.estimator(kpi)
        if estimator is None:
            raise ValueError(f"{kpi.name} has a change alert but no estimator of known variance")
        out.append(Watch(kpi, change, estimator))
    return out


def unconfigured_windows(
    watches: Iterable[Watch], configured: Iterable[int]
) -> dict[int, list[Watch]]:
    """The windows the change alerts need that are not configured, each with the alerts that
    read it: only their KPIs are kept and rendered in it."""
    skip = set(configured)
    out: dict[int, list[Watch]] = {}
    for watch in watches:
        for key in watch.keys:
            if key not in skip:
                out.setdefault(key, []).append(watch)
    return out
