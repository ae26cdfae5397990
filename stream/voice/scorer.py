"""What a scored text is, the interface a scorer implements, and the one call the worker makes.

`Sentiment.score(text)` detects the language, asks the scorer for a value in [-1, 1] when it
supports that language, and classes the value by the thresholds (kpis.md: positive at ≥ +0.05,
negative at ≤ -0.05, else neutral). A text whose language cannot be told, or is not one the
scorer supports, is `unscored`: never neutral.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from stream.voice.language import LanguageDetector

#: The contract caps a text at 5,000 characters (events.md); a longer one is scored on those.
MAX_CHARS = 5000


class Polarity(StrEnum):
    POSITIVE = "positive"
    NEUTRAL = "neutral"
    NEGATIVE = "negative"
    UNSCORED = "unscored"


@dataclass(frozen=True, slots=True)
class Score:
    """A text's class, its value in [-1, 1] (None when unscored) and its language (ISO 639 code;
    None when it could not be told, set when it was told but is not supported)."""

    polarity: Polarity
    value: float | None
    language: str | None

    @property
    def scored(self) -> bool:
        return self.polarity is not Polarity.UNSCORED


@dataclass(frozen=True, slots=True)
class Thresholds:
    """A value ≥ positive is positive, ≤ negative is negative, anything between is neutral."""

    positive: float = 0.05
    negative: float = -0.05

    def __post_init__(self) -> None:
        if not -1.0 <= self.negative <= self.positive <= 1.0:
            raise ValueError(f"need -1 ≤ negative ≤ positive ≤ 1, not {self}")

    def polarity(self, value: float) -> Polarity:
        if value >= self.positive:
            return Polarity.POSITIVE
        return Polarity.NEGATIVE if value <= self.negative else Polarity.NEUTRAL


@runtime_checkable
class Scorer(Protocol):
    """Scores texts of some languages. An operator's model implements this (registry.py says how
    to plug it in). It must be deterministic (the same text and language give the same value on
    every worker and after every restart) and must not download anything when it scores."""

    #: How the scorer is selected and documented ("lexicon", "my-model-v3").
    name: str
    #: ISO 639 codes of the languages it scores; a text in any other language is unscored.
    languages: frozenset[str]

    def valence(self, text: str, language: str) -> float | None:
        """A value in [-1, 1], or None when this text cannot be scored (then: unscored)."""
        ...


class Sentiment:
    """Detects, scores, classes: the call the worker makes for each comment, review or mention.

    Safe to share between threads once `warm_up()` has run (the built-in scorer and the detector
    only read their tables then); the first `score()` otherwise loads them (about 0.1 s)."""

    def __init__(
        self,
        scorer: Scorer,
        *,
        thresholds: Thresholds | None = None,
        detector: LanguageDetector | None = None,
    ) -> None:
        self.scorer = scorer
        self.thresholds = thresholds or Thresholds()
        self.detector = detector or LanguageDetector()

    def warm_up(self) -> None:
        """Load the language model and the scorer's tables now rather than at the first text."""
        for text, language in _WARM_UP:
            self.detector.detect(text)
            if language in self.scorer.languages:
                self.scorer.valence(text, language)

    def score(self, text: str) -> Score:
        text = text[:MAX_CHARS]
        language = self.detector.detect(text).language
        if language is None or language not in self.scorer.languages:
            return Score(Polarity.UNSCORED, None, language)
        value = self.scorer.valence(text, language)
        if value is None:
            return Score(Polarity.UNSCORED, None, language)
        if not math.isfinite(value):
            raise ValueError(f"scorer {self.scorer.name!r} gave {value!r}, not a number in [-1, 1]")
        value = round(max(-1.0, min(1.0, value)), 4)
        return Score(self.thresholds.polarity(value), value, language)


_WARM_UP = (
    ("The service was good", "en"),
    ("De service was goed", "nl"),
    ("Der Service war gut", "de"),
    ("Le service était bon", "fr"),
)
