"""Detection, classes and thresholds, unscored texts, determinism, hostile input, and plugging in
a scorer of one's own."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import stream.voice.registry as registry
from bench.sentiment.cost import hostile
from stream.voice import MAX_CHARS, Polarity, Score, Sentiment, Thresholds, create, names, register
from stream.voice import sentiment as make_sentiment
from stream.voice.engine import Lexicon
from stream.voice.language import LanguageDetector, detect

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def sentiment() -> Sentiment:
    out = make_sentiment()
    out.warm_up()
    return out


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("The parcel arrived late and damaged", "en"),
        ("Het pakket kwam te laat en beschadigd aan", "nl"),
        ("Das Paket kam zu spät und beschädigt an", "de"),
        ("Le colis est arrivé en retard et abîmé", "fr"),
    ],
)
def test_a_supported_language_is_told_and_scored(
    sentiment: Sentiment, text: str, language: str
) -> None:
    assert detect(text) == language
    score = sentiment.score(text)
    assert score == Score(Polarity.NEGATIVE, score.value, language)
    assert score.value is not None and -1 <= score.value <= -0.05


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("El pedido llegó tarde y el servicio al cliente no respondió.", "es"),
        ("Il servizio clienti è stato pessimo, non comprerò più.", "it"),
        ("O atendimento foi excelente, recomendo a todos.", "pt"),
        ("Obsługa klienta była okropna, nigdy więcej.", "pl"),
        ("Ужасное обслуживание, деньги так и не вернули.", "ru"),
        ("服务很好\uff0c送货很快。", "zh"),
        ("Kargo çok geç geldi, hiç memnun değilim.", "tr"),
    ],
)
def test_another_language_is_unscored_never_neutral(
    sentiment: Sentiment, text: str, language: str
) -> None:
    assert sentiment.score(text) == Score(Polarity.UNSCORED, None, language)


@pytest.mark.parametrize("text", ["Super!", "Top", "👍👍👍", ":)", "", "   ", "12345 !!!"])
def test_a_text_too_short_to_tell_is_unscored(sentiment: Sentiment, text: str) -> None:
    assert sentiment.score(text) == Score(Polarity.UNSCORED, None, None)


def test_an_unsure_detection_is_unscored() -> None:
    told = LanguageDetector().detect("Thank you")  # the model is 48 % sure it is English
    assert told.language == "en" and 0.3 < told.confidence < 0.6
    assert LanguageDetector(min_confidence=0.6).detect("Thank you").language is None
    assert LanguageDetector(min_words=3).detect("Thank you").language is None


def test_the_thresholds_class_values_as_the_spec_says() -> None:
    spec = Thresholds()
    assert (spec.positive, spec.negative) == (0.05, -0.05)
    assert spec.polarity(0.05) is Polarity.POSITIVE
    assert spec.polarity(0.0499) is Polarity.NEUTRAL
    assert spec.polarity(0.0) is Polarity.NEUTRAL
    assert spec.polarity(-0.0499) is Polarity.NEUTRAL
    assert spec.polarity(-0.05) is Polarity.NEGATIVE
    wide = Thresholds(positive=0.5, negative=-0.5)
    assert wide.polarity(0.4) is Polarity.NEUTRAL
    with pytest.raises(ValueError, match="negative"):
        Thresholds(positive=-0.1, negative=0.1)


def test_configured_thresholds_are_used(sentiment: Sentiment) -> None:
    text = "The service was good"
    value = sentiment.score(text).value
    assert value is not None and 0.05 < value < 0.9
    strict = Sentiment(sentiment.scorer, thresholds=Thresholds(positive=0.9, negative=-0.9))
    assert strict.score(text) == Score(Polarity.NEUTRAL, value, "en")


def test_the_same_text_scores_the_same_in_another_process(sentiment: Sentiment) -> None:
    """Deterministic across workers and restarts: a new interpreter, another hash seed."""
    texts = [
        "Great service, my parcel arrived a day early. Thank you!",
        "Niet goed, maar de bezorger was heel vriendelijk 😊",
        "Das gefällt mir nicht, leider.",
        "Je ne suis pas du tout satisfait :(",
    ]
    here = [sentiment.score(t) for t in texts]
    assert (
        here
        == [sentiment.score(t) for t in texts]
        == [Sentiment(Lexicon()).score(t) for t in texts]
    )
    code = (
        "import sys; from stream.voice import sentiment; s = sentiment();"
        "[print(repr(s.score(t))) for t in sys.argv[1:]]"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, *texts], capture_output=True, text=True, env=env, cwd=ROOT,
        check=True,
    )  # fmt: skip
    assert out.stdout.splitlines() == [repr(s) for s in here]


def test_nothing_is_fetched_from_the_network() -> None:
    """Detection and scoring load only installed files: a process whose sockets all fail can
    warm up and score."""
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('no network in this test')\n"
        "socket.socket = refuse; socket.create_connection = refuse; socket.getaddrinfo = refuse\n"
        "from stream.voice import sentiment\n"
        "s = sentiment(); s.warm_up()\n"
        "print(s.score('Le service était excellent').polarity)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FTLANG_CACHE": "/nonexistent"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "positive"


@pytest.mark.parametrize("language", ["en", "nl", "de", "fr"])
def test_hostile_texts_get_a_value(sentiment: Sentiment, language: str) -> None:
    """Texts of 5,000 characters of emoji, negations, one word, mixed scripts…: each returns (the
    timings are in `python -m bench.sentiment`)."""
    for name, text in hostile(language).items():
        assert len(text) == MAX_CHARS, name
        score = sentiment.score(text)
        assert isinstance(score.polarity, Polarity), name
        value = sentiment.scorer.valence(text, language)
        assert value is not None and -1.0 <= value <= 1.0, name


def test_a_text_over_the_cap_is_scored_on_its_first_characters(sentiment: Sentiment) -> None:
    text = "The service was excellent. " * 200
    assert len(text) > MAX_CHARS
    assert sentiment.score(text) == sentiment.score(text[:MAX_CHARS])
    assert (
        sentiment.score(text[:MAX_CHARS] + " terrible " * 50).value == sentiment.score(text).value
    )


class Constant:
    """An operator's scorer: English only, one value for every text (None for "?")."""

    name = "constant"
    languages = frozenset({"en"})

    def __init__(self, value: float | None = 0.3) -> None:
        self.value = value

    def valence(self, text: str, language: str) -> float | None:
        return None if text.endswith("?") else self.value


@pytest.fixture(autouse=True)
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scorers a test registers stay in that test: the registry is the process's, and the
    settings' tests expect the built-in names only (whichever ran first in that process)."""
    monkeypatch.setattr(registry, "_registered", dict(registry._registered))


def test_a_scorer_of_ones_own_is_selected_by_name() -> None:
    register("constant", Constant)
    assert "constant" in names() and "lexicon" in names()
    own = Sentiment(create("constant"))
    assert own.score("The service was terrible") == Score(Polarity.POSITIVE, 0.3, "en")
    assert own.score("Was the service terrible?") == Score(Polarity.UNSCORED, None, "en")
    # a language the scorer does not support is unscored, even one the built-in one scores
    assert own.score("Le service était bon") == Score(Polarity.UNSCORED, None, "fr")


def test_a_scorers_value_is_kept_within_bounds_and_must_be_a_number() -> None:
    assert Sentiment(Constant(3.0)).score("The service was fine").value == 1.0
    with pytest.raises(ValueError, match="constant"):
        Sentiment(Constant(math.nan)).score("The service was fine")


def test_an_unknown_or_wrong_scorer_is_refused() -> None:
    with pytest.raises(KeyError, match="lexicon"):
        create("no-such-scorer")
    with pytest.raises(ValueError, match="built-in"):
        register("lexicon", Constant)
    register("not-a-scorer", object)
    with pytest.raises(TypeError, match="not-a-scorer"):
        create("not-a-scorer")
