"""Sentiment KPIs from the texts' scores (kpis.md, "Voice of the customer"): the classes at the
thresholds, per source and language, net sentiment, shares and the mean; unscored texts counted
as such and in no share."""

from __future__ import annotations

from typing import Any

import pytest

from stream.kpis.surveys import SurveyRules
from stream.state.partition import PartitionState
from tests.unit.feed import CONFIG, MIN, T0, Feed

Voice = tuple[str, str, int | None]


def sentiment_of(*replies: tuple[str, list[Voice], dict[str, Any]], **rules: float) -> Any:
    """The 1 h sentiment per segment once these replies (type, voices, fields) closed."""
    feed = Feed("survey-replies")
    if rules:
        feed.state = PartitionState(
            "survey-replies", 0, SurveyRules(step_ms=MIN, grace_ms=5 * MIN, **rules), CONFIG
        )
    for i, (kind, voices, fields) in enumerate(replies):
        assert feed(f"r{i}", kind, 0, voices=voices, **fields) == "applied"
    feed.state.advance(T0 + 2 * MIN)
    return feed.kpi("sentiment")


@pytest.mark.parametrize(
    ("value", "verdict"),
    [  # ten-thousandths: positive at >= +0.05, negative at <= -0.05, else neutral
        (500, "positive"),
        (499, "neutral"),
        (0, "neutral"),
        (-499, "neutral"),
        (-500, "negative"),
        (10_000, "positive"),
        (-10_000, "negative"),
    ],
)
def test_the_class_of_a_text_at_the_thresholds(value: int, verdict: str) -> None:
    overall = sentiment_of(("mention", [("mention", "en", value)], {}))["overall"]
    counts = {"positive": 0, "neutral": 0, "negative": 0, verdict: 1}
    assert {k: overall[k] for k in counts} == counts
    assert (overall["scored"], overall["unscored"], overall["mean"]) == (1, 0, value / 10_000)


def test_thresholds_are_configurable() -> None:
    voices = [("comment", "de", 1000)]  # 0.1: positive by default, neutral from 0.2
    default = sentiment_of(("nps", voices, {"score": 9}))["overall"]
    stricter = sentiment_of(("nps", voices, {"score": 9}), positive_at=0.2)["overall"]
    assert (default["positive"], stricter["positive"], stricter["neutral"]) == (1, 0, 1)


def test_net_sentiment_shares_and_mean_with_unscored_texts_apart() -> None:
    """Scored: +0.8 and +0.1 (positive), 0 (neutral), -0.6 (negative); and two unscored.
    Net = 100 x (2 - 1) / 4 = 25; shares of the 4 scored; mean (0.8 + 0.1 + 0 - 0.6) / 4."""
    value = sentiment_of(
        ("review", [("review", "en", 8000)], {"rating": 5, "channel": "google"}),
        ("nps", [("comment", "nl", 1000)], {"score": 9, "team": "billing"}),
        ("mention", [("mention", "fr", 0)], {"channel": "x"}),
        ("csat", [("comment", "de", -6000)], {"score": 1, "team": "billing"}),
        ("mention", [("mention", "other", None)], {"channel": "x"}),
        ("nps", [("comment", "unknown", None)], {"score": 7}),
    )
    overall = value["overall"]
    assert (overall["scored"], overall["unscored"]) == (4, 2)
    assert overall["net"] == 25.0
    assert (overall["positive_ratio"], overall["neutral_ratio"]) == (0.5, 0.25)
    assert overall["negative_ratio"] == 0.25
    assert overall["mean"] == pytest.approx(0.3 / 4)
    assert overall["score_sum"] == pytest.approx(0.3)
    assert overall["margin_of_error"] is not None
    assert set(value["source"]) == {"review", "comment", "mention"}
    assert value["source"]["mention"]["unscored"] == 1
    assert value["source"]["comment"]["net"] == 0.0  # one positive, one negative
    assert set(value["language"]) == {"en", "nl", "fr", "de", "other", "unknown"}
    assert value["language"]["other"] == {**value["language"]["other"], "scored": 0}
    assert value["language"]["other"]["net"] is None  # nothing scored: no value, not 0
    assert value["channel"]["x"]["unscored"] == 1
    assert value["team"]["billing"]["net"] == 0.0


def test_a_reply_with_two_texts_counts_both() -> None:
    voices = [("review", "en", -7000), ("comment", "en", 9000)]
    overall = sentiment_of(("review", voices, {"rating": 2}))["overall"]
    assert (overall["scored"], overall["positive"], overall["negative"]) == (2, 1, 1)


def test_a_duplicate_reply_counts_its_texts_once() -> None:
    feed = Feed("survey-replies")
    voices = [("mention", "en", 9000)]
    assert feed("r1", "mention", 0, event_id="x", voices=voices) == "applied"
    assert feed("r1", "mention", 0, event_id="x", voices=voices) == "duplicate"
    feed.state.advance(T0 + 2 * MIN)
    assert feed.kpi("sentiment")["overall"]["scored"] == 1
