"""bench.alerts judges what the worker would: its windows equal a partition state's (the
baselines lagged at the hour too), its condition is `Watch.beyond`, its alarms count runs held
for `for`, and its calibration draws the generator's traffic through the real rules."""

from __future__ import annotations

import random
from dataclasses import replace

from bench.alerts.simulate import Classes, Windows, alarms, drop_delays
from bench.alerts.volumes import calibrate, library
from stream.config.change import Change
from stream.config.settings import Settings
from stream.contract.events import Event
from stream.kpis.change import watches
from stream.publish.entries import partition_entry
from stream.state.partition import PartitionState
from stream.wiring import document_shape, state_config, topic_rules

MIN = 60_000
T0 = 1_800_000_000_000 - 1_800_000_000_000 % (3_600_000)


def test_the_windows_equal_the_worker_s_change_figures() -> None:
    """NPS answers over 3 days of minutes, fed to a real partition state with a change alert of
    a 10 m short window, 1 h confirmation and 2 d baselines (hourly buckets, ending 10 m and 1 h
    before stream time) and to bench.alerts' Windows: the same figures at every checked minute,
    whatever minute of the hour."""
    change = Change(short_s=600, confirmation_s=3600, baseline_s=2 * 86400, min_samples=5)
    settings = Settings.load({"config": "none", "windows": "5m"}, environ={})
    settings = replace(settings, kpis=None)
    watch = watches({"nps": change})[0]
    rules = next(r for r in topic_rules(settings) if r.topic == "survey-replies")
    config = replace(state_config(settings), windows_ms=(5 * MIN, *watch.keys))
    state = PartitionState("survey-replies", 0, rules, config)
    rng = random.Random(5)
    minutes = 3 * 24 * 60
    columns = [[0.0] * minutes for _ in range(3)]  # responses, promoters, detractors
    n = 0
    checked = 0
    for minute in range(minutes):
        for _ in range(rng.randrange(4)):
            n += 1
            score = rng.choice((0, 5, 7, 8, 9, 10, 10))
            body = {"type": "nps", "response_id": f"r{n}", "score": score}
            state.apply(
                Event("survey-replies", f"r{n}", f"e{n}", "nps", T0 + minute * MIN, body), n
            )
            columns[0][minute] += 1
            columns[1][minute] += score >= 9
            columns[2][minute] += score <= 6
        if minute > 50 * 60 and minute % 97 == 0:
            state.advance(T0 + (minute + 1) * MIN)  # the minute has closed
            shape = replace(document_shape(settings, {"survey-replies": 1}), watches=(watch,))
            doc = shape.document([partition_entry(state)])["change"]["nps"]["overall"]
            windows = Windows(watch, [c[: minute + 1] for c in columns])
            short, confirmation = (
                windows.short_test(minute + 1),
                windows.confirmation_test(minute + 1),
            )
            assert short.to_json() == {k: doc[k] for k in short.to_json()}
            assert confirmation.to_json() == doc["confirmation"]
            assert watch.beyond(short, confirmation) == doc["beyond"]
            checked += 1
    assert checked > 5


def test_an_alarm_is_a_run_held_for_for_plus_one_evaluations() -> None:
    held = [False, True, True, True, False, True, True, True, True, True, False, True]
    assert alarms(held, 2) == [3, 7]
    assert alarms(held, 0) == [1, 5, 11]
    assert alarms(held, 5) == []


def test_a_drop_is_found_and_steady_traffic_is_not() -> None:
    watch = watches({"nps": Change(for_s=300)})[0]
    classes = Classes(((1, 1, 0), (1, 0, 0), (1, 0, 1)), (0.5, 0.3, 0.2), (0.3, 0.3, 0.4))
    found = drop_delays(watch, classes, 3000, 120, trials=3, seed=1)
    assert all(d is not None and d < 60 for d in found)
    steady = Classes(classes.vectors, classes.before, classes.before)
    assert drop_delays(watch, steady, 3000, 120, trials=3, seed=1) == [None, None, None]


def test_the_calibration_draws_the_generator_s_nps_and_abandonment() -> None:
    """About +30 NPS and 70 % of carts abandoned, as the generator's profile makes them, at
    4 survey replies a second at 20 events/s (the generator's default rate)."""
    watched = watches({"nps": Change(), "cart_abandonment": Change()})
    calibration = calibrate(watched, 20, 2000, seed=3)
    assert round(calibration.per_minute["survey-replies"]) == 240
    lib = library(calibration, 300, seed=4)
    totals = {
        (s.watch.kpi.name, s.label): [sum(c) for c in lib[i]]
        for i, s in enumerate(calibration.series)
    }
    responses, promoters, detractors = totals["nps", "all"]
    assert 25 < 100 * (promoters - detractors) / responses < 35
    expected = 300 * 240 * 0.45  # 300 minutes of 240 replies, 45 % of them NPS answers
    assert 0.95 * expected < responses < 1.05 * expected
    abandoned, converted = totals["cart_abandonment", "all"][:2]
    assert 0.6 < abandoned / (abandoned + converted) < 0.75
    channels = {s.label for s in calibration.series if s.watch.kpi.name == "nps"}
    assert {"channel=web", "team=billing", "region=eu"} <= channels
