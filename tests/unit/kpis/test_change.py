"""Change alerts' arithmetic: each estimator's value and variance by hand, z and its edge
cases, the alert's condition, and which KPIs have an estimator."""

from __future__ import annotations

import math

import pytest

from stream.config.change import WITHOUT_VARIANCE, Change
from stream.config.kpifile import KPI_RANGES
from stream.kpis.catalog import CATALOG, Kpi
from stream.kpis.change import Comparison, Estimate, Watch, estimate, json_number, watches
from stream.kpis.kinds import Estimator


def kpi(name: str) -> Kpi:
    return next(k for k in CATALOG if k.name == name)


def estimator(name: str) -> Estimator:
    k = kpi(name)
    found = k.kind.estimator(k)
    assert found is not None
    return found


def test_nps_per_response_variance_is_p_plus_d_minus_the_squared_difference() -> None:
    """50 promoters, 30 passives, 20 detractors: NPS 30; on the -1..1 scale the variance of
    one response is 0.5 + 0.2 - 0.3^2 = 0.61, i.e. 6100 in NPS points squared."""
    e = estimate(
        estimator("nps"), {"promoters": 50, "passives": 30, "detractors": 20, "responses": 100}
    )
    assert e is not None and e.samples == 100
    assert e.value == pytest.approx(30.0) and e.variance == pytest.approx(6100.0)


def test_a_proportion_varies_as_p_times_one_minus_p_on_its_scale() -> None:
    abandonment = estimate(estimator("cart_abandonment"), {"abandoned": 70, "converted": 30})
    assert abandonment == Estimate(100, 0.7, pytest.approx(0.21))  # type: ignore[arg-type]
    csat = estimate(estimator("csat"), {"satisfied": 78, "responses": 100})
    assert csat is not None and csat.value == pytest.approx(78.0)
    assert csat.variance == pytest.approx(100**2 * 0.78 * 0.22)
    # more reopens than solves: no negative variance
    reopen = estimate(estimator("reopen_rate"), {"reopens": 3, "solves": 2})
    assert reopen is not None and reopen.variance == 0.0 and reopen.value == 1.5


def test_a_mean_varies_as_the_mean_square_minus_the_squared_mean() -> None:
    """CES scores 7, 5, 3: mean 5, mean square 83 / 3, variance 83/3 - 25 = 8/3 (divided by n,
    not n - 1: the same form as the proportions')."""
    ces = estimate(
        estimator("ces"),
        {"responses": 3, "score_sum": 15, "easy": 2, "score_sum_of_squares": 49 + 25 + 9},
    )
    assert ces is not None and ces.value == 5.0 and ces.variance == pytest.approx(8 / 3)
    duration = estimate(
        estimator("resolution_time"),
        {"seconds_gcount": 2, "seconds_gsum": 300.0, "seconds_sum_of_squares": 100**2 + 200**2},
    )
    assert duration is not None and duration.value == 150.0
    assert duration.variance == pytest.approx(2500.0)


def test_no_samples_no_estimate() -> None:
    assert estimate(estimator("nps"), {"promoters": 0, "responses": 0}) is None
    assert estimate(estimator("conversion"), {}) is None


def test_z_is_the_difference_in_standard_errors_of_the_difference() -> None:
    """NPS 15 from 200 responses against NPS 30 from 10,000: z = -15 / sqrt(v/200 + v'/10^4)."""
    window = Estimate(200, 15.0, 6000.0)
    baseline = Estimate(10_000, 30.0, 6100.0)
    test = Comparison(window, baseline)
    stderr = math.sqrt(6000 / 200 + 6100 / 10_000)
    assert test.stderr == pytest.approx(stderr)
    assert test.z == pytest.approx(-15 / stderr)
    assert test.to_json()["baseline_samples"] == 10_000


def test_constant_samples_give_an_infinite_z_or_none() -> None:
    """Every sample the same in both windows: a different value is infinitely unusual (as
    Prometheus divides), the same value is no change at all (Prometheus' NaN: no record)."""
    assert Comparison(Estimate(40, 0.0, 0.0), Estimate(500, 1.0, 0.0)).z == -math.inf
    assert Comparison(Estimate(40, 1.0, 0.0), Estimate(500, 1.0, 0.0)).z is None
    assert Comparison(None, Estimate(500, 1.0, 0.0)).z is None
    assert [json_number(x) for x in (-math.inf, math.inf, 1.5, None)] == ["-Inf", "+Inf", 1.5, None]


def watch(name: str, **settings: object) -> Watch:
    return watches({name: Change(**settings)})[0]  # type: ignore[arg-type]


def test_the_alert_needs_both_windows_beyond_their_thresholds_in_the_direction() -> None:
    nps = watch("nps")
    assert nps.direction == "down"
    low, base = Estimate(200, 10.0, 6000.0), Estimate(10_000, 30.0, 6100.0)
    conf = Estimate(1200, 20.0, 6000.0)
    short_test, confirmation = Comparison(low, base), Comparison(conf, base)
    assert short_test.z is not None and short_test.z < -3
    assert confirmation.z is not None and confirmation.z < -2
    assert nps.beyond(short_test, confirmation)
    assert not nps.beyond(short_test, Comparison(Estimate(1200, 28.0, 6000.0), base))  # unconfirmed
    assert not watch("nps", direction="up").beyond(short_test, confirmation)
    assert watch("nps", direction="both").beyond(short_test, confirmation)
    assert not watch("nps", min_samples=201).beyond(short_test, confirmation)
    assert not watch("nps", z=4.0).beyond(short_test, confirmation)
    few_base = Comparison(low, Estimate(29, 30.0, 6100.0))  # the baseline needs min_samples too
    assert not nps.beyond(few_base, confirmation)
    abandonment = watch("cart_abandonment")
    assert abandonment.direction == "up"


def test_every_kpi_of_known_variance_has_an_estimator_and_the_others_none() -> None:
    """What the configuration file allows change alerts on (it cannot import the kinds) is
    exactly what the kinds can test: a new kind must say which it is."""
    with_estimator = {k.name for k in CATALOG if k.kind.estimator(k) is not None}
    assert with_estimator == set(KPI_RANGES) - WITHOUT_VARIANCE
    assert {k.name for k in CATALOG} == set(KPI_RANGES)
    for k in CATALOG:
        found = k.kind.estimator(k)
        if found is not None:  # it reads only components the KPI publishes
            published = {p for p, _ in k.parts} | {getattr(k.kind, "total", "")}
            published |= {"seconds_gcount", "seconds_gsum", "seconds_sum_of_squares"}
            published |= {"scored"}  # the sentiment's scored texts, beside its parts
            assert set(found.components) <= published, k.name
    assert {k.worse for k in CATALOG} == {"down", "up"}
    with pytest.raises(ValueError, match="no estimator"):
        watches({"average_order_value": Change()})
