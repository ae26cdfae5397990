"""Each valence rule, in each supported language, on sentences a reader can check by hand."""

from __future__ import annotations

import pytest

from stream.voice.engine import LexiconScorer


@pytest.fixture(scope="module", params=["en", "nl", "de", "fr"])
def scorer(request: pytest.FixtureRequest) -> LexiconScorer:
    return LexiconScorer.for_language(request.param)


#: Per language: a positive and a negative word in one frame, and that frame's other words.
SENTENCES = {
    "en": {
        "good": "The service was good",
        "bad": "The service was bad",
        "not good": "The service was not good",
        "very good": "The service was very good",
        "GOOD": "The service was GOOD",
        "bad but good": "The food was bad, but the service was good",
        "good but bad": "The food was good, but the service was bad",
        "frame": "The service was",
    },
    "nl": {
        "good": "De service was goed",
        "bad": "De service was slecht",
        "not good": "De service was niet goed",
        "very good": "De service was heel goed",
        "GOOD": "De service was GOED",
        "bad but good": "Het eten was slecht, maar de service was goed",
        "good but bad": "Het eten was goed, maar de service was slecht",
        "frame": "De service was",
    },
    "de": {
        "good": "Der Service war gut",
        "bad": "Der Service war schlecht",
        "not good": "Der Service war nicht gut",
        "very good": "Der Service war sehr gut",
        "GOOD": "Der Service war GUT",
        "bad but good": "Das Essen war schlecht, aber der Service war gut",
        "good but bad": "Das Essen war gut, aber der Service war schlecht",
        "frame": "Der Service war",
    },
    "fr": {
        "good": "Le service était bon",
        "bad": "Le service était mauvais",
        "not good": "Le service n'était pas bon",
        "very good": "Le service était très bon",
        "GOOD": "Le service était BON",
        "bad but good": "Le repas était mauvais, mais le service était bon",
        "good but bad": "Le repas était bon, mais le service était mauvais",
        "frame": "Le service était",
    },
}


def said(scorer: LexiconScorer, key: str) -> float:
    return scorer.valence(SENTENCES[scorer.language][key])


def test_a_polar_word_gives_its_sign(scorer: LexiconScorer) -> None:
    assert said(scorer, "good") > 0.05
    assert said(scorer, "bad") < -0.05
    assert said(scorer, "frame") == 0.0


def test_negation_flips(scorer: LexiconScorer) -> None:
    assert said(scorer, "not good") < -0.05
    assert abs(said(scorer, "not good")) < said(scorer, "good")  # -0.74 times: weaker


def test_an_intensifier_increases(scorer: LexiconScorer) -> None:
    assert said(scorer, "very good") > said(scorer, "good")


def test_capitals_among_lower_case_increase(scorer: LexiconScorer) -> None:
    assert said(scorer, "GOOD") > said(scorer, "good")


def test_the_clause_after_but_weighs_more(scorer: LexiconScorer) -> None:
    assert said(scorer, "bad but good") > 0.05
    assert said(scorer, "good but bad") < -0.05


def test_exclamation_marks_increase_up_to_four(scorer: LexiconScorer) -> None:
    good = SENTENCES[scorer.language]["good"]
    one, three, four, nine = (scorer.valence(good + "!" * n) for n in (1, 3, 4, 9))
    assert said(scorer, "good") < one < three < four == nine
    bad = SENTENCES[scorer.language]["bad"]
    assert scorer.valence(bad + "!!") < scorer.valence(bad) < 0


def test_emoji_and_emoticons(scorer: LexiconScorer) -> None:
    frame = SENTENCES[scorer.language]["frame"]
    assert scorer.valence(f"{frame} 😊") > 0.05
    assert scorer.valence(f"{frame} 😡") < -0.05
    assert scorer.valence(f"{frame} 👍🏽") > 0.05  # a skin tone changes nothing
    assert scorer.valence(f"{frame} ❤️") > 0.05  # nor the variation selector
    assert scorer.valence(f"{frame} :)") > 0.05
    assert scorer.valence(f"{frame} :(") < -0.05
    assert scorer.valence(f"{frame} 🔥") == 0.0  # used both ways: no valence
    assert scorer.valence(SENTENCES[scorer.language]["good"] + " 😊") > said(scorer, "good")


def test_a_value_stays_within_minus_one_and_one(scorer: LexiconScorer) -> None:
    assert -1.0 <= scorer.valence("😡" * 500) < -0.99
    assert 0.99 < scorer.valence("😍" * 500) <= 1.0


@pytest.mark.parametrize(
    ("language", "text", "sign"),
    [
        # "nothing but" and "not only" do not negate
        ("en", "Nothing but problems", -1),
        ("en", "Not only fast but friendly", 1),
        ("nl", "Niets dan problemen", -1),
        ("de", "Nichts als Ärger", -1),
        ("de", "Nicht nur schnell, sondern freundlich", 1),
        ("fr", "Rien que des problèmes", -1),
        # "n't" negates; "ne … pas" negates once; the negation of a negative word is positive
        ("en", "The agent wasn't helpful", -1),
        ("fr", "Ce n'est pas mal", 1),
        ("fr", "Je ne suis jamais déçu", 1),
        # verb-second order: a trailing negation negates the verb before it, not "leider"
        ("de", "Das empfehle ich nicht", -1),
        ("de", "Leider geht es nicht", -1),
        ("nl", "Helaas werkt het niet", -1),
        # inflected forms are found through their base form
        ("nl", "De slechte service", -1),
        ("nl", "Waardeloze service", -1),
        ("de", "Der schlechte Service", -1),
        ("de", "Die miserable App", -1),
        ("fr", "Les chaussures sont déçues", -1),
        # an intensifier before no polar word is a word of its own
        ("nl", "Super!", 1),
        ("fr", "Super service", 1),
        # homographs of function words are not polar
        ("nl", "Ik ga naar de winkel", 0),
        ("fr", "Tous les colis", 0),
    ],
)
def test_language_rules(language: str, text: str, sign: int) -> None:
    value = LexiconScorer.for_language(language).valence(text)
    assert (value > 0.05) - (value < -0.05) == sign, value


def test_a_negation_reaches_three_words_inside_its_clause() -> None:
    english = LexiconScorer.for_language("en")
    assert english.valence("not a very good day") < 0  # three words back
    assert english.valence("not, the service was good") > 0  # another clause


def test_explain_says_what_each_word_gave() -> None:
    value, parts = LexiconScorer.for_language("en").explain("Not good, but the staff was lovely")
    given = {token: round(v, 3) for token, v in parts if v}
    assert value > 0
    assert given["good"] < 0 < given["lovely"]
