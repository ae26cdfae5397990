"""Two resolutions at their boundaries: 1-minute buckets for 5 m, hourly buckets for 30 d."""

from __future__ import annotations

from typing import Any

from stream.config import lagged_window
from stream.contract.events import Event
from stream.kpis.surveys import SurveyRules
from stream.publish.document import render
from stream.publish.entries import partition_entry, window_copies
from stream.publish.merge import merge
from stream.state.buckets import Kept, regroup
from stream.state.partition import PartitionState, StateConfig

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
T0 = 1_800_000_000_000 - 1_800_000_000_000 % DAY  # midnight
CONFIG = StateConfig(
    step_ms=MIN,
    grace_ms=5 * MIN,
    windows_ms=(5 * MIN, 30 * DAY),
    max_segment_values=20,
    long_step_ms=HOUR,
)


class Survey:
    """NPS replies into one partition; reads the responses per window."""

    def __init__(self, config: StateConfig = CONFIG) -> None:
        self.config = config
        self.state = PartitionState(
            "survey-replies", 0, SurveyRules(step_ms=MIN, grace_ms=5 * MIN), config
        )
        self.n = 0

    def reply(self, t: int, score: int = 9) -> str:
        self.n += 1
        body = {"type": "nps", "response_id": f"r{self.n}", "score": score}
        return self.state.apply(
            Event("survey-replies", f"r{self.n}", f"e{self.n}", "nps", t, body), self.n
        )

    def responses(self) -> dict[str, Any]:
        doc = render(
            merge([partition_entry(self.state)]),
            self.config.windows_ms,
            {"survey-replies": 1},
            max_values=20,
        )
        return {w: v["nps"]["overall"]["responses"] for w, v in doc["windows"].items()}


def test_windows_longer_than_a_day_take_the_long_step() -> None:
    config = StateConfig(
        step_ms=MIN,
        grace_ms=5 * MIN,
        windows_ms=(5 * MIN, HOUR, DAY, 7 * DAY, 30 * DAY),
        max_segment_values=20,
        long_step_ms=HOUR,
    )
    steps = [(r.kind, r.step_ms, [w.size_ms for w in r.windows]) for r in config.resolutions()]
    assert steps == [("b", MIN, [5 * MIN, HOUR, DAY]), ("l", HOUR, [7 * DAY, 30 * DAY])]
    short_only = StateConfig(MIN, 5 * MIN, (5 * MIN, DAY), 20, long_step_ms=HOUR)
    assert [r.kind for r in short_only.resolutions()] == ["b"]  # no hourly buckets at all


def test_the_30d_window_advances_by_the_hour_and_the_5m_window_by_the_minute() -> None:
    survey = Survey()
    assert [(r.kind, r.step_ms) for r in survey.state.resolutions] == [("b", MIN), ("l", HOUR)]
    survey.reply(T0 + 10 * HOUR - 1)  # the last millisecond of the hour [9 h, 10 h)
    survey.reply(T0 + 10 * HOUR)  # the first of [10 h, 11 h): S = 10:00
    assert survey.responses() == {"5m": 1, "30d": 1}  # [9 h, 10 h) ended at S; 10 h is open
    survey.reply(T0 + 10 * HOUR + 59 * MIN)  # S = 10:59: the hour is still open
    assert survey.responses() == {"5m": 0, "30d": 1}  # 5m: minutes ending in (10:54, 10:59]
    survey.reply(T0 + 11 * HOUR)  # S = 11:00: [10 h, 11 h) has ended
    assert survey.responses() == {"5m": 1, "30d": 3}


def test_late_within_grace_across_an_hour_boundary_lands_in_its_closed_hour() -> None:
    survey = Survey()
    survey.reply(T0 + 11 * HOUR + 3 * MIN)  # S = 11:03
    assert survey.responses() == {"5m": 0, "30d": 0}
    # 10:58: its minute ended at 10:59, within grace (5 min) of S; its hour ended at 11:00
    assert survey.reply(T0 + 10 * HOUR + 58 * MIN) == "applied"
    assert survey.responses() == {"5m": 1, "30d": 1}  # in the closed hour, and the 5m window
    # 10:57: its minute ended at 10:58 = S - grace: still applied, to its hour, but it is out
    # of the 5m window (minutes ending in (10:58, 11:03]); 10:56 is late
    assert survey.reply(T0 + 10 * HOUR + 57 * MIN) == "applied"
    assert survey.reply(T0 + 10 * HOUR + 56 * MIN) == "late"
    assert survey.responses() == {"5m": 1, "30d": 2}


def test_a_30d_window_slides_past_its_first_hour_and_the_hour_is_dropped() -> None:
    survey = Survey()
    survey.reply(T0 + 30 * MIN)  # the hour [0, 1 h)
    survey.reply(T0 + 2 * HOUR)
    assert survey.responses()["30d"] == 1
    survey.reply(T0 + 30 * DAY + HOUR - 1)  # S - 30d < 1 h: the first hour is still in
    assert survey.responses()["30d"] == 2
    long = survey.state.resolutions[1]
    assert min(long.buckets) == T0 // HOUR
    survey.reply(T0 + 30 * DAY + HOUR)  # S - 30d = 1 h: the first hour has left
    assert survey.responses()["30d"] == 2  # the 2 h reply and the one just before S's hour
    assert min(long.buckets) > T0 // HOUR
    # the minute buckets keep only the 5 minutes the short window needs
    assert len(survey.state.resolutions[0].buckets) <= 6


def test_regroup_merges_whole_buckets_and_says_from_when_they_are_whole() -> None:
    minute = {k: {("n", "", "", -1): 1} for k in range(120, 245)}  # minutes 120 .. 244
    kept = [Kept(MIN, minute, 120 * MIN)]
    hours, since = regroup(kept, HOUR, stream_time=245 * MIN)
    assert since == 2 * HOUR  # minute 120 starts hour 2: whole from there
    assert hours == {
        2: {("n", "", "", -1): 60},
        3: {("n", "", "", -1): 60},
        4: {("n", "", "", -1): 5},
    }
    _, since = regroup([Kept(MIN, minute, 121 * MIN)], HOUR, stream_time=245 * MIN)
    assert since == 3 * HOUR  # hour 2 lacks its first minute
    # no step divides 90 s: nothing to rebuild from; whole from the next 90 s bucket on
    buckets, since = regroup(kept, 90_000, stream_time=245 * MIN)
    assert buckets == {} and since == (245 * MIN // 90_000 + 1) * 90_000
    # a changelog that holds every event since the start gives whole buckets from the start
    assert regroup([Kept(MIN, minute, None)], HOUR, stream_time=245 * MIN)[1] is None


def lagged_responses(survey: Survey) -> dict[int, int]:
    """NPS responses per window key, lagged windows too, from the partition's own totals."""
    return {
        key: sum(n for (m, d, _, _), n in totals.items() if d == "" and m.startswith("nps_"))
        for key, totals in window_copies(survey.state).items()
    }


def test_a_lagged_window_holds_what_ends_before_the_window_it_lags_and_never_overlaps_it() -> None:
    """A 1 h window at the minute and a 7 d window ending 1 h before stream time, at the hour
    (a change alert's short window and its baseline): every reply is in at most one of them,
    the baseline holds the hourly buckets ending in (S - 1h - 7d, S - 1h], and the hourly
    buckets are kept for 7 d + 1 h."""
    baseline = lagged_window(7 * DAY // 1000, HOUR // 1000)
    config = StateConfig(MIN, 5 * MIN, (HOUR, baseline), 20, long_step_ms=HOUR)
    assert [(r.kind, [(w.size_ms, w.lag_ms) for w in r.windows]) for r in config.resolutions()] == [
        ("b", [(HOUR, 0)]),
        ("l", [(7 * DAY, HOUR)]),
    ]
    survey = Survey(config)
    replies = [T0 + h * HOUR + m * MIN for h in range(0, 24 * 9, 5) for m in (0, 29, 59)]
    for t in replies:
        survey.reply(t)
        now = survey.state.stream_time
        assert now is not None
        seen = lagged_responses(survey)
        in_short = sum(now - HOUR < (r // MIN + 1) * MIN <= now for r in replies if r <= now)
        last_hour_end = (now - HOUR) // HOUR * HOUR  # the latest hour ending by S - 1h
        in_base = sum(
            last_hour_end - 7 * DAY < (r // HOUR + 1) * HOUR <= last_hour_end
            for r in replies
            if r <= now
        )
        assert seen.get(HOUR, 0) == in_short and seen.get(baseline, 0) == in_base, now
        long = survey.state.resolutions[1]
        assert min(long.buckets) >= (now - HOUR - 7 * DAY) // HOUR  # kept: 7 d + 1 h, no more
    assert in_base > 0 and in_short > 0


def test_a_lagged_window_rebuilt_after_a_restart_with_it_is_incomplete_until_it_is_whole() -> None:
    survey = Survey(StateConfig(MIN, 5 * MIN, (HOUR,), 20, long_step_ms=HOUR))
    for h in range(30):
        survey.reply(T0 + h * HOUR)
    baseline = lagged_window(DAY // 1000 * 2, HOUR // 1000)  # 2 d ending 1 h ago
    written, marker = survey.state.flush()
    rows = [(k, v) for k, v in [*written, marker] if v is not None]
    config = StateConfig(MIN, 5 * MIN, (HOUR, baseline), 20, long_step_ms=HOUR)
    restored = PartitionState.restore("survey-replies", 0, survey.state.rules, config, rows)
    since, complete_at = restored.incomplete()[baseline]
    assert complete_at == since + 2 * DAY + HOUR  # once its oldest bucket is past `since`


def test_a_window_only_change_alerts_read_holds_only_their_measures_and_no_sketch() -> None:
    """Limited to NPS's and a duration's measures: no CSAT series, no sketch bins; the same
    NPS totals as an unlimited window of the same span."""
    from stream.state.measures import SKETCH
    from stream.state.windows import SKETCH_SUFFIX, keeps

    assert f".{SKETCH}" == SKETCH_SUFFIX
    limited = frozenset({"nps_promoters", "nps_passives", "nps_detractors", "resolution"})
    assert keeps(limited, "nps_promoters") and keeps(limited, "resolution.squares_s2")
    assert not keeps(limited, "resolution.sketch") and not keeps(limited, "csat_responses")
    lagged = lagged_window(3600, 600)
    limits = {lagged: limited, 30 * MIN: limited}  # a late sample can land in the 30 m one
    config = StateConfig(
        MIN, 5 * MIN, (HOUR, 30 * MIN, lagged), 20, long_step_ms=HOUR, window_measures=limits
    )
    survey = Survey(config)
    for minute in range(0, 3 * 60, 7):
        survey.reply(T0 + minute * MIN, score=minute % 11)
        survey.reply(T0 + (minute - 3) * MIN, score=minute % 7)  # within grace: a closed bucket
        body = {"type": "csat", "response_id": f"c{minute}", "score": 5}
        survey.state.apply(
            Event("survey-replies", f"c{minute}", f"ce{minute}", "csat", T0 + minute * MIN, body),
            10_000 + minute,
        )
    windows = {w.key: w for w in survey.state.windows}
    full = StateConfig(MIN, 5 * MIN, (HOUR, 30 * MIN, lagged), 20, long_step_ms=HOUR)
    plain = Survey(full)
    for minute in range(0, 3 * 60, 7):
        plain.reply(T0 + minute * MIN, score=minute % 11)
        plain.reply(T0 + (minute - 3) * MIN, score=minute % 7)
    unlimited = {w.key: w for w in plain.state.windows}
    nps = {"nps_promoters", "nps_passives", "nps_detractors"}
    for key in (lagged, 30 * MIN):
        assert windows[key].totals and {s[0] for s in windows[key].totals} <= nps
        assert windows[key].totals == unlimited[key].totals
    assert any(s[0] == "csat_responses" for s in windows[HOUR].totals)  # not limited
