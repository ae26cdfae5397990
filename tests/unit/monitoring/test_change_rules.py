"""The change alerts' rules under promtool: Prometheus' own engine evaluates the committed rule
file on the component series of two workers (the rules that can matter to each test, which give
the whole file's outcome: test_rules' module text).

A true drop fires after the hold time and names its segment; a wobble within chance, a small
segment with too few samples, and a move in the better direction do not; recovery resolves the
alert; and the recorded z equals the Python arithmetic of the snapshot (stream/kpis/change.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stream.config import window_label
from stream.kpis.change import Comparison, Watch, estimate, watches
from stream.monitoring import change as rules
from tests.unit.monitoring.test_rules import (
    CONFIG,
    EXACTLY_ONCE,
    WORKERS,
    coverage,
    labels,
    rule_groups,
    run_promtool_tests,
)

NPS = next(w for w in watches(CONFIG.changes()) if w.kpi.name == "nps")
ABANDONMENT = next(w for w in watches(CONFIG.changes()) if w.kpi.name == "cart_abandonment")
RESOLUTION = next(w for w in watches(CONFIG.changes()) if w.kpi.name == "resolution_time")
HOLD_MIN = NPS.change.for_s // 60
#: Minutes of series each test has: the hold time and a margin on both sides.
SPAN = 2 * HOLD_MIN + 30

#: NPS answers (promoters, passives, detractors), fleet-wide, per window of a change alert.
Answers = tuple[int, int, int]
#: The baselines: NPS +30 from 30,000 answers over each 7 d.
BASELINE: Answers = (15_000, 9_000, 6_000)


def nps_series(
    windows: dict[str, list[Answers]], dimension: str = "all", segment: str = "all"
) -> list[dict[str, str]]:
    """Component series of NPS per worker (each holds half), per window role: a list of
    (answers, minutes) stretches, one value a minute."""
    out = []
    for role, stretches in windows.items():
        window = window_label(NPS.keys[rules.ROLES.index(role)])
        for worker in WORKERS:
            base = {
                "instance": worker,
                "window": window,
                "dimension": dimension,
                "segment": segment,
            }
            parts = {"promoters": [], "passives": [], "detractors": [], "responses": []}
            for (top, middle, bottom), minutes in stretches:  # type: ignore[misc]
                for name, n in zip(
                    parts, (top, middle, bottom, top + middle + bottom), strict=True
                ):
                    parts[name].append(f"{n / 2:g}x{minutes - 1}")
            for name, values in parts.items():
                out.append(
                    {
                        "series": f"cxkpi_nps_{name}" + labels(**base),
                        "values": " ".join(values),
                    }
                )
    return out


def steady(short: Answers, confirmation: Answers) -> dict[str, list[Any]]:
    """The same answers in each window for the whole test."""
    return {
        "short": [(short, SPAN)],
        "confirmation": [(confirmation, SPAN)],
        "baseline": [(BASELINE, SPAN)],
        "confirmation_baseline": [(BASELINE, SPAN)],
    }


def z_of(watch: Watch, short: Answers, baseline: Answers) -> float:
    def named(answers: Answers) -> dict[str, float]:
        top, middle, bottom = answers
        return {"promoters": top, "detractors": bottom, "responses": top + middle + bottom}

    z = Comparison(
        estimate(watch.estimator, named(short)), estimate(watch.estimator, named(baseline))
    ).z
    assert z is not None
    return z


def nps_of(answers: Answers) -> float:
    top, middle, bottom = answers
    return 100 * (top - bottom) / (top + middle + bottom)


def alert_test(
    at: int, fires: bool, short: Answers, segment: tuple[str, str] = ("all", "all")
) -> dict[str, Any]:
    """The alert at minute `at`: firing with these labels and this summary, or nothing."""
    rule = next(
        r for g in rule_groups() for r in g["rules"] if r.get("alert") == rules.alert_name(NPS)
    )
    dimension, name = segment
    where = "all segments" if dimension == "all" else f"{dimension} {name}"
    z = z_of(NPS, short, BASELINE)
    summary = (
        f"NPS of {where} over 1h is {nps_of(short):.4g} against its baseline of "
        f"{nps_of(BASELINE):.4g} (the 7d before): z = {z:.1f} standard errors, beyond the 3 "
        "that chance alone reaches about once in 741 tests"
    )
    expected = {
        "exp_labels": {**rule["labels"], "dimension": dimension, "segment": name},
        "exp_annotations": {
            "summary": summary,
            "description": rule["annotations"]["description"]
            .replace('{{ if eq $labels.dimension "all" }}all segments', "")
            .replace("{{ else }}{{ $labels.dimension }} {{ $labels.segment }}{{ end }}", where),
            "runbook_url": rule["annotations"]["runbook_url"],
        },
    }
    return {
        "eval_time": f"{at}m",
        "alertname": rules.alert_name(NPS),
        "exp_alerts": [expected] if fires else [],
    }


def case(series: list[dict[str, str]], tests: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": coverage_for(SPAN) + series,
        "alert_rule_test": tests,
    }


def coverage_for(minutes: int) -> list[dict[str, str]]:
    """Every partition owned once, for the whole test (test_rules' series last 30 minutes)."""
    out = []
    for s in coverage(EXACTLY_ONCE):
        value = s["values"].split("x")[0]
        out.append({**s, "values": f"{value}x{minutes}"})
    return out


#: NPS +15 from 1,000 answers in the hour (a channel at the generator's volume), +25 from
#: 6,000 in 6 h: a true drop of 15 points.
DROP: Answers = (400, 350, 250)
DROP_6H: Answers = (2900, 1700, 1400)
#: NPS +27 from 1,000 answers: 3 points below the baseline, within chance.
WOBBLE: Answers = (460, 350, 190)
WOBBLE_6H: Answers = (2950, 1850, 1200)


def test_the_numbers_mean_what_the_cases_say() -> None:
    assert z_of(NPS, DROP, BASELINE) < -NPS.change.z
    assert z_of(NPS, DROP_6H, BASELINE) < -NPS.change.confirmation_z
    assert -2 < z_of(NPS, WOBBLE, BASELINE) < 0 and -2 < z_of(NPS, WOBBLE_6H, BASELINE) < 0
    assert nps_of(BASELINE) == 30 and nps_of(DROP) == 15


def test_a_true_drop_fires_after_the_hold_time_only(tmp_path: Path) -> None:
    run_promtool_tests(
        tmp_path,
        [
            case(
                nps_series(steady(DROP, DROP_6H)),
                [
                    alert_test(HOLD_MIN - 1, False, DROP),  # pending: held for less than `for`
                    alert_test(HOLD_MIN + 1, True, DROP),
                ],
            )
        ],
    )


def test_a_wobble_within_chance_does_not_fire(tmp_path: Path) -> None:
    run_promtool_tests(
        tmp_path,
        [
            case(
                nps_series(steady(WOBBLE, WOBBLE_6H)),
                [alert_test(HOLD_MIN + 1, False, WOBBLE), alert_test(SPAN - 1, False, WOBBLE)],
            )
        ],
    )


def test_a_drop_in_one_segment_fires_with_its_labels_and_a_small_one_does_not(
    tmp_path: Path,
) -> None:
    """Team billing drops by 15 points: its alert has dimension="team", segment="billing". Team
    tech drops by 70 points on 20 answers, fewer than min_samples (30): no alert, however
    unusual."""
    small: Answers = (4, 4, 12)  # NPS -40 from 20 answers
    small_6h: Answers = (24, 24, 72)
    assert z_of(NPS, small, BASELINE) < -3 and z_of(NPS, small_6h, BASELINE) < -3
    series = nps_series(steady(DROP, DROP_6H), "team", "billing") + nps_series(
        steady(small, small_6h), "team", "tech"
    )
    run_promtool_tests(
        tmp_path,
        [case(series, [alert_test(HOLD_MIN + 1, True, DROP, ("team", "billing"))])],
    )


def test_a_rise_does_not_fire_an_alert_on_drops(tmp_path: Path) -> None:
    rise: Answers = (700, 200, 100)  # NPS +60
    rise_6h: Answers = (3900, 1500, 600)
    assert z_of(NPS, rise, BASELINE) > NPS.change.z
    run_promtool_tests(
        tmp_path, [case(nps_series(steady(rise, rise_6h)), [alert_test(SPAN - 1, False, rise)])]
    )


def test_recovery_resolves_the_alert(tmp_path: Path) -> None:
    """The drop lasts HOLD + 15 minutes, then the hour is back at the baseline's level: the
    alert fires during the drop and is gone after it."""
    drop_for = HOLD_MIN + 15
    back: Answers = (500, 300, 200)  # NPS +30 again
    windows = {
        "short": [(DROP, drop_for), (back, SPAN - drop_for)],
        "confirmation": [(DROP_6H, drop_for), ((3000, 1800, 1200), SPAN - drop_for)],
        "baseline": [(BASELINE, SPAN)],
        "confirmation_baseline": [(BASELINE, SPAN)],
    }
    run_promtool_tests(
        tmp_path,
        [
            case(
                nps_series(windows),
                [
                    alert_test(drop_for - 2, True, DROP),
                    alert_test(drop_for + 2, False, back),
                    alert_test(SPAN - 1, False, back),
                ],
            )
        ],
    )


def test_the_recorded_figures_equal_the_snapshot_arithmetic(tmp_path: Path) -> None:
    """A proportion (cart abandonment) and a mean (resolution time): the z and standard error
    Prometheus records over two workers' components equal stream.kpis.change's, to 1e-9 (NPS's
    z is in the summaries above)."""
    cases = []
    for watch, named_short, named_base, parts in (
        (
            ABANDONMENT,
            {"abandoned": 90, "converted": 30},
            {"abandoned": 7000, "converted": 3000},
            ("abandoned", "converted"),
        ),
        (
            RESOLUTION,
            {"seconds_gcount": 40, "seconds_gsum": 600_000.0, "seconds_sum_of_squares": 1.2e10},
            {"seconds_gcount": 4000, "seconds_gsum": 5.2e7, "seconds_sum_of_squares": 9.9e11},
            ("seconds_gcount", "seconds_gsum", "seconds_sum_of_squares"),
        ),
    ):
        series = []
        for role, named in zip(
            rules.ROLES, (named_short, named_short, named_base, named_base), strict=True
        ):
            window = window_label(watch.keys[rules.ROLES.index(role)])
            for worker in WORKERS:
                base = {"instance": worker, "window": window, "dimension": "all", "segment": "all"}
                for part in parts:
                    series.append(
                        {
                            "series": f"cxkpi_{watch.kpi.name}_{part}" + labels(**base),
                            "values": f"{named[part] / 2:.17g}x10",
                        }
                    )
        comparison = Comparison(
            estimate(watch.estimator, named_short), estimate(watch.estimator, named_base)
        )
        assert comparison.z is not None and comparison.stderr is not None
        checks = []
        for operation, value in (("z", comparison.z), ("stderr", comparison.stderr)):
            close = f"abs({rules.record(watch, operation)} - {value:.17g}) < bool 1e-9"
            checks.append(
                {
                    "eval_time": "5m",
                    "expr": close,
                    "exp_samples": [{"labels": labels(dimension="all", segment="all"), "value": 1}],
                }
            )
        cases.append(
            {
                "interval": "1m",
                "input_series": coverage_for(10) + series,
                "promql_expr_test": checks,
            }
        )
    run_promtool_tests(tmp_path, cases)
