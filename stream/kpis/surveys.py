"""Survey replies: NPS, CSAT, CES, net emotion and review rating (docs/semantics.md, "Surveys").

Each response is its own sample in the bucket of its event time; the entity (the response id) is
kept only as long as a duplicate of it could still arrive inside grace.
"""

from __future__ import annotations

from typing import Any

from stream.contract.events import Event
from stream.contract.voice import SCALE, VOICES
from stream.kpis import RemembersNothing, segment_name, shared
from stream.state.facts import OVERALL, Contribution, Fact, Segments
from stream.state.segments import UNKNOWN, SegmentNames
from stream.state.windows import bucket_end

# fact = (t, 0, event_id, type, value, channel, region, team, voices); value: the score (nps,
# csat, ces), the rating or None (review), the named emotions as a bit mask (emotion), None
# (mention); voices: its texts' (source, language, value or None) (stream/contract/voice.py), or
# None (facts written before there were voices end after team)
_T, _TYPE, _SCORE, _VOICES = 0, 3, 4, 8
DIMENSIONS = ("channel", "region", "team")
#: The reply types these rules know. Any other type is a bug upstream (the decoder rejects it):
#: it raises rather than being counted as one of these.
TYPES = ("nps", "csat", "ces", "emotion", "review", "mention")
#: The 20 emotions of the Net Emotional Value method (events.md), positive ones first; an emotion
#: reply's bit mask has bit i set when it names EMOTIONS[i].
POSITIVE_EMOTIONS = (
    "happy",
    "pleased",
    "trusting",
    "valued",
    "cared_for",
    "safe",
    "focused",
    "stimulated",
    "exploratory",
    "interested",
    "energetic",
    "indulgent",
)
NEGATIVE_EMOTIONS = (
    "irritated",
    "hurried",
    "neglected",
    "unhappy",
    "unsatisfied",
    "stressed",
    "disappointed",
    "frustrated",
)
EMOTIONS = POSITIVE_EMOTIONS + NEGATIVE_EMOTIONS
_BIT = {emotion: 1 << i for i, emotion in enumerate(EMOTIONS)}
_POSITIVE_MASK = sum(_BIT[e] for e in POSITIVE_EMOTIONS)


def _unknown(kind: str) -> ValueError:
    return ValueError(f"survey-replies rules have no KPI for type {kind!r} (known: {TYPES})")


def nps_category(score: int) -> str:
    """Promoters score 9-10, passives 7-8, detractors 0-6 (Bain)."""
    if score >= 9:
        return "promoters"
    return "passives" if score >= 7 else "detractors"


def emotion_mask(emotions: list[str]) -> int:
    """The bit mask of the named emotions (each of the vocabulary; the schema checks that)."""
    mask = 0
    for emotion in emotions:
        mask |= _BIT[emotion]
    return mask


def named_emotions(mask: int) -> list[str]:
    """The emotions a bit mask names, in vocabulary order."""
    return [emotion for emotion in EMOTIONS if mask & _BIT[emotion]]


def emotion_class(mask: int) -> str:
    """An emotion reply is positive when it names more positive than negative emotions, negative
    when more negative, else mixed (spec: net emotion score)."""
    positive = (mask & _POSITIVE_MASK).bit_count()
    negative = (mask & ~_POSITIVE_MASK).bit_count()
    if positive > negative:
        return "positive"
    return "negative" if negative > positive else "mixed"


def _voices(body: dict[str, Any]) -> tuple[tuple[str, str, int | None], ...] | None:
    """What the fact keeps of a reply's texts: only their scores (the text itself is gone)."""
    voices = body.get(VOICES)
    return (
        tuple((source, language, value) for source, language, value in voices) if voices else None
    )


_TEXT_SEGMENTS: dict[tuple[Segments, str, str], Segments] = {}


def _text_segments(segments: Segments, source: str, language: str) -> Segments:
    """A reply's segments with its text's source and language. Kept: sources and languages are
    bounded (stream/contract/voice.py), and each text of each reply needs them again."""
    key = (segments, source, language)
    where = _TEXT_SEGMENTS.get(key)
    if where is None:
        where = _TEXT_SEGMENTS[key] = shared(
            (*segments, ("source", source), ("language", language))
        )
    return where


def _value(event: Event) -> int | None:
    """What a reply's fact keeps of its answer."""
    body = event.body
    if event.type == "emotion":
        return emotion_mask(body["emotions"])
    if event.type == "review":
        return body.get("rating")
    return None if event.type == "mention" else body["score"]


class SurveyRules(RemembersNothing):
    """KPI rules of the `survey-replies` topic."""

    topic = "survey-replies"
    dimensions = DIMENSIONS

    def __init__(
        self,
        *,
        step_ms: int,
        grace_ms: int,
        positive_at: float = 0.05,
        negative_at: float = -0.05,
    ) -> None:
        self.step_ms = step_ms
        self.grace_ms = grace_ms
        # a text's class by its value in ten-thousandths (kpis.md: positive at >= +0.05, ...)
        self.positive_at = round(positive_at * SCALE)
        self.negative_at = round(negative_at * SCALE)

    def fact(self, event: Event, names: SegmentNames) -> Fact:
        if event.type not in TYPES:
            raise _unknown(event.type)
        return (
            event.t,
            0,
            event.event_id,
            event.type,
            _value(event),
            *(segment_name(names, d, event.body) for d in DIMENSIONS),
            _voices(event.body),
        )

    def contributions(self, facts: list[Fact], stream_time: int) -> list[Contribution]:
        out: list[Contribution] = []
        for f in facts:
            t, kind, score = f[_T], f[_TYPE], f[_SCORE]
            segments = shared(
                (OVERALL, *((d, v or UNKNOWN) for d, v in zip(DIMENSIONS, f[5:8], strict=True)))
            )
            if kind == "nps":
                out.append((t, f"nps_{nps_category(score)}", segments, 1))
            elif kind == "csat":
                out.append((t, "csat_responses", segments, 1))
                if score >= 4:
                    out.append((t, "csat_satisfied", segments, 1))
            elif kind == "ces":
                out.append((t, "ces_responses", segments, 1))
                out.append((t, "ces_score_sum", segments, score))
                out.append((t, "ces_score_squares", segments, score * score))
                if score >= 5:
                    out.append((t, "ces_easy", segments, 1))
            elif kind == "emotion":
                out.append((t, f"emotion_{emotion_class(score)}", segments, 1))
                out.append((t, "emotion_replies", segments, 1))
                out.extend((t, f"emotion_{e}", segments, 1) for e in named_emotions(score))
            elif kind == "review":
                if score is not None:  # a review without a rating has no rating to average
                    out.append((t, "review_count", segments, 1))
                    out.append((t, "review_rating_sum", segments, score))
                    out.append((t, "review_rating_squares", segments, score * score))
                    if score >= 4:
                        out.append((t, "review_good", segments, 1))
            elif kind != "mention":  # a mention's KPIs are those of its text (sentiment)
                raise _unknown(kind)
            if len(f) > _VOICES and f[_VOICES]:
                self._sentiment(out, t, segments, f[_VOICES])
        return out

    def _sentiment(
        self, out: list[Contribution], t: int, segments: Segments, voices: list[Any]
    ) -> None:
        """Each text: scored or not, its class and value, per source and language besides the
        reply's segments (kpis.md, "Voice of the customer")."""
        for source, language, value in voices:
            where = _text_segments(segments, source, language)
            if value is None:
                out.append((t, "sentiment_unscored", where, 1))
            else:
                out.append((t, self._class_measure(value), where, 1))
                out.append((t, "sentiment_score_sum", where, value))

    def _class_measure(self, value: int) -> str:
        """The measure counting a scored text of this value (one string each, not built per
        text)."""
        if value >= self.positive_at:
            return "sentiment_positive"
        return "sentiment_negative" if value <= self.negative_at else "sentiment_neutral"

    def _forget_at(self, facts: list[Fact]) -> int:
        return bucket_end(max(f[_T] for f in facts), self.step_ms) + self.grace_ms + 1

    def next_due(self, facts: list[Fact], stream_time: int) -> int | None:
        return self._forget_at(facts) if facts else None

    def keep(self, facts: list[Fact], stream_time: int) -> list[Fact]:
        return facts if facts and stream_time < self._forget_at(facts) else []

    def decided(self, key: str, facts: list[Fact], kept: list[Fact]) -> list[Any]:
        """Nothing of a survey response is sent on to another partition."""
        return []
