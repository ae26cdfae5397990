"""What scoring costs: microseconds per text (detection and scoring, as the worker calls them) and
the worst case over hostile texts of 5,000 characters, the contract's longest.

Times are the CPU time of the calling thread (`time.thread_time_ns`), not wall-clock time: on a
machine shared with other work, wall-clock figures count the time the process waited for a core
(a p99 of 3 ms instead of 0.12 ms here while two benchmarks ran beside it), which is not what a
text costs. The CPU time is what the worker spends per text, whatever else runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from stream.voice import MAX_CHARS, Sentiment

#: The start of each hostile text, so that its language is told and the scorer runs on it.
PREFIXES = {
    "en": "The service was terrible ",
    "nl": "De service was slecht ",
    "de": "Der Service war schlecht ",
    "fr": "Le service était nul ",
}
_NEGATIONS = {"en": "not never no ", "nl": "niet geen nooit ", "de": "nicht kein nie ",
              "fr": "ne pas jamais "}  # fmt: skip
_NEGATED = {"en": "not good ", "nl": "niet goed ", "de": "nicht gut ", "fr": "pas bon "}
_WORD = {"en": "terrible ", "nl": "slecht ", "de": "schlecht ", "fr": "nul "}
_BOOSTERS = {"en": "very ", "nl": "heel ", "de": "sehr ", "fr": "très "}


def hostile(language: str) -> dict[str, str]:
    """Texts of `MAX_CHARS` characters built to be slow: VADER's emoji pathology
    (cjhutto/vaderSentiment#110), long runs of negations, of intensifiers, of one word, unknown
    words (every one looked up in all its inflections), mixed scripts, punctuation."""
    fillers = {
        "emoji": "😡👍😂🔥❤️",
        "one emoji": "😡",
        "emoticons": ":) :( ",
        "negations": _NEGATIONS[language],
        "negated words": _NEGATED[language],
        "one word": _WORD[language],
        "intensifiers": _BOOSTERS[language],
        "unknown words": "zzqqxyvwkkenheid ",
        "one long word": "qz",
        "mixed scripts": "Очень плохо 服务很好 الخدمة ممتازة 😡 :) ",
        "punctuation": "!?.,",
    }
    prefix = PREFIXES[language]
    return {
        name: (prefix + filler * (MAX_CHARS // len(filler) + 1))[:MAX_CHARS]
        for name, filler in fillers.items()
    }


def per_text_us(sentiment: Sentiment, texts: list[str], repeats: int) -> list[float]:
    """CPU microseconds of each `score()` call, every text `repeats` times."""
    out = []
    for _ in range(repeats):
        for text in texts:
            start = time.thread_time_ns()
            sentiment.score(text)
            out.append((time.thread_time_ns() - start) / 1000)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median_ms(call: Callable[[], object], runs: int = 5) -> float:
    """Median CPU milliseconds of `runs` calls."""
    times = []
    for _ in range(runs):
        start = time.thread_time_ns()
        call()
        times.append((time.thread_time_ns() - start) / 1e6)
    return statistics.median(times)


def worst_hostile(sentiment: Sentiment, languages: tuple[str, ...]) -> list[tuple[str, float]]:
    """(case, ms) for every hostile text: detection and scoring (`score`), and the scorer alone
    in the text's language (`valence`, so its cost is measured even where detection gives up)."""
    out = []
    for language in languages:
        for name, text in hostile(language).items():
            out.append((f"{language} {name}", median_ms(lambda t=text: sentiment.score(t))))
            out.append(
                (
                    f"{language} {name} (scorer alone)",
                    median_ms(lambda t=text, lang=language: sentiment.scorer.valence(t, lang)),
                )
            )
    return out
