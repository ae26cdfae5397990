"""Free text is scored where it is decoded, then dropped (events.md, kpis.md "Voice of the
customer"): a reply's `comment`, a review's or mention's `text` leave the event here, and only
what the KPIs need goes on, as `voices`: one (source, language, value) per text.

The language is one the scorer supports, `other` (told, but not supported) or `unknown` (too
short or unsure to tell): a bounded segment whatever customers write. The value is the score in
ten-thousandths (an integer: windows sum it exactly), or None when the text is unscored.
"""

from __future__ import annotations

from typing import Any

from stream.voice import Sentiment

#: The field of the decoded body that carries a reply's voices.
VOICES = "voices"
#: The score's scale in the state: ten-thousandths (the scorer rounds to four decimals).
SCALE = 10_000
_TEXT_TYPES = frozenset({"review", "mention"})


def take_texts(body: dict[str, Any], sentiment: Sentiment | None) -> None:
    """Replace the free text of a decoded survey reply by its voices (nothing without a
    sentiment to score it: the text is dropped all the same)."""
    texts = []
    if body.get("type") in _TEXT_TYPES:
        texts.append((body["type"], body.pop("text")))
    comment = body.pop("comment", None)
    if comment is not None:
        texts.append(("comment", comment))
    if sentiment is not None and texts:
        body[VOICES] = [voice(source, text, sentiment) for source, text in texts]


def voice(source: str, text: str, sentiment: Sentiment) -> tuple[str, str, int | None]:
    """(source, language segment, value in ten-thousandths or None when unscored)."""
    score = sentiment.score(text)
    if score.language is None:
        language = "unknown"
    elif score.language in sentiment.scorer.languages:
        language = score.language
    else:
        language = "other"
    value = None if score.value is None else round(score.value * SCALE)
    return source, language, value
