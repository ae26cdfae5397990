"""Voice of the customer: the sentiment of a free text (kpis.md, "Voice of the customer").

Pure Python, no Faust or Kafka: the worker builds one `Sentiment` at start (`sentiment()`, then
`warm_up()`) and calls `score(text)` for each comment, review or mention; the `Score` says
positive, neutral, negative or unscored, the value in [-1, 1] and the language. How a text is
scored, the packages and their licences, and the measured accuracy: docs/sentiment.md.
"""

from stream.voice.registry import create, names, register, sentiment
from stream.voice.scorer import MAX_CHARS, Polarity, Score, Scorer, Sentiment, Thresholds

__all__ = [
    "MAX_CHARS",
    "Polarity",
    "Score",
    "Scorer",
    "Sentiment",
    "Thresholds",
    "create",
    "names",
    "register",
    "sentiment",
]
