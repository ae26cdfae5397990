"""Survey rules at every category boundary of the spec (kpis.md, "Survey KPIs"), and reply types
they do not know: an error, never counted as NPS, CSAT, CES, net emotion or review rating."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from stream.contract.events import Event, Rejection, decode
from stream.kpis.surveys import SurveyRules
from stream.state.segments import SegmentNames
from tests.unit.feed import MIN, T0, Feed


def window(kind: str, *scores: int) -> dict[str, Any]:
    """The 1 h value of `kind` once replies with these scores (at minute 0) have closed."""
    return replies(kind, *({"score": score} for score in scores))["overall"]


def replies(kind: str, *bodies: dict[str, Any], kpi: str | None = None) -> dict[str, Any]:
    """The 1 h value of the KPI (`kind` by default) per segment, once replies of `kind` with
    these bodies (at minute 0) have closed."""
    feed = Feed("survey-replies")
    for i, body in enumerate(bodies):
        feed(f"r{i}", kind, 0, **body)
    feed.state.advance(T0 + 2 * MIN)
    return feed.kpi(kpi or kind)


@pytest.mark.parametrize(
    ("score", "categories", "nps"),
    [  # (promoters, passives, detractors): promoters 9-10, passives 7-8, detractors 0-6
        (0, (0, 0, 1), -100.0),
        (6, (0, 0, 1), -100.0),
        (7, (0, 1, 0), 0.0),
        (8, (0, 1, 0), 0.0),
        (9, (1, 0, 0), 100.0),
        (10, (1, 0, 0), 100.0),
    ],
)
def test_nps_category_of_each_boundary_score(
    score: int, categories: tuple[int, int, int], nps: float
) -> None:
    value = window("nps", score)
    assert (value["promoters"], value["passives"], value["detractors"]) == categories
    assert (value["responses"], value["score"]) == (1, nps)


def test_nps_of_the_four_boundary_scores_together() -> None:
    """6, 7, 8, 9: one detractor, two passives, one promoter: NPS 0. Adjusted Wald: n + 3 = 7,
    p = d = 1.75 / 7 = 0.25, var = (p + d - (p - d)^2) / 7 = 0.5 / 7, margin 196 * sqrt(1/14)."""
    value = window("nps", 6, 7, 8, 9)
    assert (value["promoters"], value["passives"], value["detractors"]) == (1, 2, 1)
    assert (value["responses"], value["score"]) == (4, 0.0)
    assert value["margin_of_error"] == pytest.approx(196 / math.sqrt(14))


@pytest.mark.parametrize(
    ("score", "satisfied", "csat"),
    [(1, 0, 0.0), (3, 0, 0.0), (4, 1, 100.0), (5, 1, 100.0)],  # top-2-box: 4 and 5
)
def test_csat_satisfied_from_4(score: int, satisfied: int, csat: float) -> None:
    assert window("csat", score) == {"satisfied": satisfied, "responses": 1, "score": csat}


@pytest.mark.parametrize(("score", "easy"), [(1, 0), (4, 0), (5, 1), (7, 1)])  # easy: 5-7
def test_ces_easy_from_5(score: int, easy: int) -> None:
    assert window("ces", score) == {
        "responses": 1,
        "score_sum": score,
        "mean": float(score),
        "easy": easy,
        "easy_ratio": float(easy),
        "score_sum_of_squares": score * score,
    }


def test_ces_mean_and_share_easy_of_the_boundary_scores() -> None:
    """4 and 5: mean 4.5, one of two easy."""
    value = window("ces", 4, 5)
    assert (value["mean"], value["easy"], value["easy_ratio"]) == (4.5, 1, 0.5)


@pytest.mark.parametrize(
    ("emotions", "verdict"),
    [  # positive: more positive than negative words; negative: more negative; else mixed
        (["happy"], "positive"),
        (["frustrated"], "negative"),
        (["happy", "frustrated"], "mixed"),
        (["happy", "valued", "frustrated"], "positive"),
        (["happy", "hurried", "frustrated"], "negative"),
        (["indulgent", "energetic", "irritated", "stressed"], "mixed"),
        (["safe", "focused", "stimulated", "exploratory", "interested"], "positive"),
        (["neglected", "unhappy", "unsatisfied", "disappointed", "cared_for"], "negative"),
    ],
)
def test_net_emotion_class_of_a_reply(emotions: list[str], verdict: str) -> None:
    value = replies("emotion", {"emotions": emotions}, kpi="net_emotion")["overall"]
    counts = {"positive": 0, "mixed": 0, "negative": 0, verdict: 1}
    assert {k: value[k] for k in counts} == counts
    assert (value["replies"], value["score"]) == (
        1,
        {"positive": 100.0, "negative": -100.0}.get(verdict, 0.0),
    )


def test_net_emotion_score_and_its_segments() -> None:
    """Two positive, one mixed, one negative reply: 100 x (2 - 1) / 4 = 25; per team too."""
    value = replies(
        "emotion",
        {"emotions": ["happy"], "team": "billing"},
        {"emotions": ["valued", "safe"], "team": "billing"},
        {"emotions": ["happy", "stressed"], "team": "tech"},
        {"emotions": ["hurried"], "team": "tech"},
        kpi="net_emotion",
    )
    assert (value["overall"]["replies"], value["overall"]["score"]) == (4, 25.0)
    assert value["team"]["billing"]["score"] == 100.0
    assert value["team"]["tech"]["score"] == -50.0


@pytest.mark.parametrize(("rating", "good"), [(1, 0), (3, 0), (4, 1), (5, 1)])  # good: 4-5
def test_review_rating_good_from_4(rating: int, good: int) -> None:
    value = replies("review", {"rating": rating, "text": "x"}, kpi="review_rating")["overall"]
    assert value == {
        "reviews": 1,
        "rating_sum": rating,
        "mean": float(rating),
        "good": good,
        "good_ratio": float(good),
        "rating_sum_of_squares": rating * rating,
    }


def test_review_rating_per_platform_and_reviews_without_a_rating() -> None:
    """A review without a rating has no rating to average: it is in neither mean nor share."""
    value = replies(
        "review",
        {"rating": 5, "text": "x", "channel": "google"},
        {"rating": 2, "text": "x", "channel": "google"},
        {"rating": 4, "text": "x", "channel": "trustpilot"},
        {"text": "x", "channel": "trustpilot"},
        kpi="review_rating",
    )
    assert (value["overall"]["reviews"], value["overall"]["mean"]) == (3, 11 / 3)
    assert value["channel"]["google"]["good_ratio"] == 0.5
    assert value["channel"]["trustpilot"]["reviews"] == 1
    assert set(value) == {"overall", "channel"}  # per platform only


def test_a_mention_is_applied_and_counts_toward_no_score_kpi() -> None:
    feed = Feed("survey-replies")
    assert feed("r1", "mention", 0, text="x", channel="x") == "applied"
    feed.state.advance(T0 + 2 * MIN)
    for kpi in ("nps", "csat", "ces", "net_emotion", "review_rating"):
        assert all(v == 0 for k, v in feed.kpi(kpi)["overall"].items() if isinstance(v, int)), kpi


#: Not a type of the rules (the decoder rejects each before they are reached).
UNKNOWN = ("csat_response", "nps_response", "reviews", "")


@pytest.mark.parametrize("kind", UNKNOWN)
def test_an_unknown_type_is_an_error_not_a_ces_response(kind: str) -> None:
    feed = Feed("survey-replies")
    with pytest.raises(ValueError, match=f"type '{kind}'"):
        feed("r1", kind, 0, score=5)
    assert feed.state.entities == {} and feed.state.counts["applied"] == 0


@pytest.mark.parametrize("kind", UNKNOWN)
def test_a_fact_of_an_unknown_type_contributes_nothing_but_an_error(kind: str) -> None:
    """A fact restored from state written by another version has no KPI here either."""
    rules = SurveyRules(step_ms=MIN, grace_ms=5 * MIN)
    event = Event("survey-replies", "r1", "e1", "ces", T0, {"type": "ces", "score": 5})
    fact = rules.fact(event, SegmentNames(20, {}))
    assert len(rules.contributions([fact], T0)) == 4  # responses, score sum, squares, easy
    foreign = (*fact[:3], kind, *fact[4:])  # Fact: (t, rank, event_id, type, ...)
    with pytest.raises(ValueError, match=f"type '{kind}'"):
        rules.contributions([fact, foreign], T0)


def test_the_decoder_rejects_those_types_first() -> None:
    for kind in UNKNOWN:
        raw = json.dumps(
            {
                "event_id": "e1",
                "type": kind,
                "occurred_at": "2027-01-15T08:00:00Z",
                "response_id": "r1",
                "score": 5,
            }
        ).encode()
        result = decode(
            raw, "survey-replies", max_bytes=65536, now_ms=T0 + MIN, max_future_ms=3600_000
        )
        assert isinstance(result, Rejection) and result.error == "unknown_type", kind


def test_a_response_is_remembered_exactly_as_long_as_a_duplicate_can_be_applied() -> None:
    """Minute 0's bucket ends at 1: a copy is applied (so must be known) while stream time is at
    most 1 + grace (5) = minute 6, and late from 6 min + 1 ms on."""
    feed = Feed("survey-replies")
    assert feed("r1", "nps", 0, event_id="x", score=10) == "applied"
    feed.state.advance(T0 + 6 * MIN)
    assert feed("r1", "nps", 0, event_id="x", score=10) == "duplicate"
    feed.state.advance(T0 + 6 * MIN + 1)
    assert feed("r1", "nps", 0, event_id="x", score=10) == "late"
    assert feed.state.entities == {}  # forgotten once a copy could only be late
    assert feed.state.counts == {"applied": 1, "duplicate": 1, "late": 1, "dead_lettered": 0}


def test_each_reply_counts_in_its_team_channel_and_region_else_unknown() -> None:
    feed = Feed("survey-replies")
    feed("r1", "nps", 0, score=10, team="billing", channel="web")
    feed("r2", "nps", 0, score=0, team="billing", region="eu")
    feed("r3", "csat", 0, score=4, team="billing", region="eu")
    feed("r4", "ces", 0, score=5, channel="app")
    feed.state.advance(T0 + 2 * MIN)
    expected = {
        "nps": {
            "team": {"billing": 2},
            "channel": {"web": 1, "unknown": 1},
            "region": {"eu": 1, "unknown": 1},
        },
        "csat": {"team": {"billing": 1}, "channel": {"unknown": 1}, "region": {"eu": 1}},
        "ces": {"team": {"unknown": 1}, "channel": {"app": 1}, "region": {"unknown": 1}},
    }
    for kind, dimensions in expected.items():
        value = feed.kpi(kind)
        for dimension, responses in dimensions.items():
            cells = value[dimension]
            assert {seg: cells[seg]["responses"] for seg in cells} == responses, (kind, dimension)
    assert feed.kpi("nps")["team"]["billing"]["score"] == 0.0  # one promoter, one detractor


def test_no_facts_nothing_due_nothing_kept() -> None:
    """The Rules interface on an entity with no facts left (stream/state/facts.py)."""
    rules = SurveyRules(step_ms=MIN, grace_ms=5 * MIN)
    assert rules.next_due([], T0) is None
    assert rules.keep([], T0) == []
    assert rules.contributions([], T0) == []


def test_the_share_of_replies_naming_each_emotion() -> None:
    """Four replies: `happy` named by three, `stressed` by two, `safe` by one: 3/4, 2/4, 1/4;
    every other emotion 0 of 4 (a share of 0, not no value: there are replies)."""
    value = replies(
        "emotion",
        {"emotions": ["happy"], "team": "billing"},
        {"emotions": ["happy", "stressed"], "team": "billing"},
        {"emotions": ["happy", "safe", "stressed"], "team": "tech"},
        {"emotions": ["frustrated"], "team": "tech"},
        kpi="emotions",
    )
    overall = value["overall"]
    assert overall["replies"] == 4
    assert overall["named"]["happy"] == 3 and overall["shares"]["happy"] == 0.75
    assert (overall["shares"]["stressed"], overall["shares"]["safe"]) == (0.5, 0.25)
    assert overall["shares"]["valued"] == 0.0 and len(overall["shares"]) == 20
    assert value["team"]["billing"]["shares"]["stressed"] == 0.5
    assert value["team"]["tech"]["named"]["frustrated"] == 1
