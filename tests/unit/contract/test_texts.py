"""Free text is scored where it is decoded, then dropped (events.md, kpis.md "Voice of the
customer"): what comes out of the decoder holds the texts' sentiment, never the texts."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest

from stream.contract.events import Event, decode
from stream.voice import Sentiment, sentiment

NOW = 1_800_000_000_000
ENGLISH = "Quick and friendly, thanks, a great service!"
DUTCH_BAD = "Slechte service, ik ben erg teleurgesteld."
SPANISH = "Entrega rápida y muy amables, gracias por todo."


@cache
def texts() -> Sentiment:
    return sentiment("lexicon")


def decoded(kind: str, with_sentiment: bool = True, **fields: Any) -> Event:
    raw = json.dumps(
        {
            "event_id": "e1",
            "type": kind,
            "occurred_at": "2027-01-15T08:00:00Z",
            "response_id": "r1",
            **fields,
        }
    ).encode()
    event = decode(
        raw,
        "survey-replies",
        max_bytes=65536,
        now_ms=NOW,
        max_future_ms=3_600_000,
        sentiment=texts() if with_sentiment else None,
    )
    assert isinstance(event, Event), event
    return event


def value_of(text: str) -> int:
    score = texts().score(text)
    assert score.value is not None
    return round(score.value * 10_000)


@pytest.mark.parametrize(
    ("kind", "fields", "source"),
    [
        ("nps", {"score": 9, "comment": ENGLISH}, "comment"),
        ("emotion", {"emotions": ["happy"], "comment": ENGLISH}, "comment"),
        ("review", {"rating": 5, "text": ENGLISH}, "review"),
        ("mention", {"text": ENGLISH}, "mention"),
    ],
)
def test_the_text_leaves_the_event_and_its_sentiment_stays(
    kind: str, fields: dict[str, Any], source: str
) -> None:
    event = decoded(kind, **fields)
    assert "comment" not in event.body and "text" not in event.body
    assert ENGLISH not in json.dumps(event.body)
    assert event.body["voices"] == [(source, "en", value_of(ENGLISH))]
    assert value_of(ENGLISH) >= 500  # clearly positive (>= 0.05)


def test_a_review_with_a_comment_has_two_voices() -> None:
    event = decoded("review", rating=1, text=DUTCH_BAD, comment=ENGLISH)
    assert event.body["voices"] == [
        ("review", "nl", value_of(DUTCH_BAD)),
        ("comment", "en", value_of(ENGLISH)),
    ]
    assert value_of(DUTCH_BAD) <= -500


def test_other_languages_and_texts_too_short_to_tell_are_unscored() -> None:
    assert decoded("mention", text=SPANISH).body["voices"] == [("mention", "other", None)]
    assert decoded("mention", text="ok").body["voices"] == [("mention", "unknown", None)]
    assert decoded("mention", text="🙂🙂").body["voices"][0][2] is None


def test_without_a_scorer_the_text_is_dropped_all_the_same() -> None:
    event = decoded("review", with_sentiment=False, rating=4, text=ENGLISH, comment=ENGLISH)
    assert "voices" not in event.body and ENGLISH not in json.dumps(event.body)


def test_a_reply_without_text_has_no_voices() -> None:
    assert "voices" not in decoded("csat", score=4).body
    assert "voices" not in decoded("emotion", emotions=["safe"]).body


def test_a_long_comment_is_scored_on_its_first_5000_characters() -> None:
    """A comment has no length limit of its own (only the record's size), a review's text at
    most 5,000 characters; the scorer reads the first 5,000 of either."""
    comment = ENGLISH + " " + "x " * 20_000
    assert decoded("nps", score=3, comment=comment).body["voices"][0][:2] == ("comment", "en")


@pytest.mark.parametrize(
    "text",
    [
        "😡" * 5000,
        "not " * 1250,
        "good " * 1000,
        ("Hello мир 你好 مرحبا שלום " * 200)[:5000],
        "\u0000\ufeff\u202e" * 1666,
    ],
)
def test_hostile_texts_are_scored_or_unscored_never_a_crash(text: str) -> None:
    event = decoded("mention", text=text)
    [(source, language, value)] = event.body["voices"]
    assert source == "mention" and isinstance(language, str)
    assert value is None or -10_000 <= value <= 10_000
