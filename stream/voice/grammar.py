"""The words each language's valence rules look for: negations, intensifiers, "but" words, and how
an inflected word is found in a lexicon that lists only some of its forms.

The lists are short on purpose, so a reader can check them: they are the common function words
of each language (English: VADER's own lists), not words picked to fit a test set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

#: Added to a polar word's magnitude by an intensifier right before it (VADER's B_INCR); a
#: dampener takes as much away.
BOOST = 0.293


@dataclass(frozen=True)
class Grammar:
    """What the rule engine needs to know of one language."""

    language: str
    #: Words that flip the valence of a polar word that follows within three words.
    negations: frozenset[str]
    #: Word -> added to the magnitude of the polar word that follows (negative: a dampener).
    intensifiers: dict[str, float]
    #: Contrast words: what comes before weighs half, what comes after one and a half times.
    contrasts: frozenset[str]
    #: A word ending so is a negation too (English "n't").
    negation_suffix: str = ""
    #: A negation followed directly by one of these does not negate ("nothing but", "not only").
    not_negating_after: frozenset[str] = frozenset()
    #: Verb-second languages: a negation with no polar word after it in its clause negates the
    #: last polar word before it ("Das gefällt mir nicht", "Ik raad het niet aan").
    negation_after_verb: bool = False
    #: Words the lexicon rates in a sense they rarely have in feedback: function words of the
    #: same spelling as an adjective (Dutch "naar" is "to" and "nasty") and participles (German
    #: "geschickt" is "sent" and "skilful"). Never polar, nor their inflected forms.
    not_polar: frozenset[str] = frozenset()
    #: Split words at apostrophes (French elision: "n'est" -> "n", "est").
    split_apostrophes: bool = False
    #: Other forms to look up, in order, when a word is not in the lexicon.
    lemmas: Callable[[str], Iterator[str]] = field(default=lambda word: iter(()))


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


def _boosters(up: str, down: str = "") -> dict[str, float]:
    return {**{w: BOOST for w in up.split()}, **{w: -BOOST for w in down.split()}}


ENGLISH = Grammar(
    language="en",
    # VADER's NEGATE list, less "despite" (it concedes, it does not negate), plus "nobody"; and
    # any word ending in "n't" (negation_suffix)
    negations=_set(
        "aint arent cannot cant couldnt darent didnt doesnt ain't aren't can't couldn't daren't "
        "didn't doesn't dont hadnt hasnt havent isnt mightnt mustnt neither don't hadn't hasn't "
        "haven't isn't mightn't mustn't neednt needn't never no none nope nor not nothing nowhere "
        "oughtnt shant shouldnt uhuh wasnt werent oughtn't shan't shouldn't uh-uh wasn't weren't "
        "without wont wouldnt won't wouldn't rarely seldom nobody"
    ),
    negation_suffix="n't",
    # VADER's BOOSTER_DICT, its one-word entries
    intensifiers=_boosters(
        "absolutely amazingly awfully completely considerable considerably decidedly deeply "
        "effing enormous enormously entirely especially exceptional exceptionally extreme "
        "extremely fabulously flipping flippin frackin fracking fricking frickin frigging "
        "friggin fully fuckin fucking fuggin fugging greatly hella highly hugely incredible "
        "incredibly intensely major majorly more most particularly purely quite really "
        "remarkably so substantially thoroughly total totally tremendous tremendously uber "
        "unbelievably unusually utter utterly very",
        "almost barely hardly kinda kindof less little marginal marginally occasional "
        "occasionally partly scarce scarcely slight slightly somewhat sorta sortof",
    ),
    contrasts=frozenset({"but", "however"}),
    not_negating_after=frozenset({"but", "only", "just"}),
)


def _dutch(word: str) -> Iterator[str]:
    """Dutch adjective endings: -e, -er, -ste (slechte, sneller, beste); a doubled consonant is
    single again (snelle -> snel), a single vowel before the last consonant doubles (grote ->
    groot), and z/v at the end were s/f (waardeloze -> waardeloos, brave -> braaf)."""
    for suffix in ("ste", "st", "er", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)]
            yield stem
            if len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] not in "aeiou":
                yield stem[:-1]
            base = stem[:-1] + {"z": "s", "v": "f"}.get(stem[-1], stem[-1])
            if base != stem:
                yield base
            if len(base) > 3 and base[-2] in "aeou" and base[-3] not in "aeiou":
                yield base[:-1] + base[-2] + base[-1]


DUTCH = Grammar(
    language="nl",
    negations=_set("niet geen nooit niets niks niemand nergens zonder"),
    intensifiers=_boosters(
        "zeer heel erg echt super ontzettend enorm extreem uiterst bijzonder hartstikke "
        "totaal helemaal volledig absoluut zo zó ongelooflijk mega",
        "beetje nauwelijks amper enigszins ietwat tamelijk vrij",
    ),
    contrasts=frozenset({"maar"}),
    not_negating_after=frozenset({"alleen", "enkel", "dan"}),
    negation_after_verb=True,
    not_polar=_set("naar waar"),  # "to", "where" (and "nasty", "true")
    lemmas=_dutch,
)


def _german(word: str) -> Iterator[str]:
    """German adjective endings, the comparative's first (schlechtere, schnellsten): -ere/-er…
    then -e, -en, -em, -er, -es, and -st(e) for the superlative; an adjective in -el or -er
    loses that e when inflected (miserable -> miserabel, teure -> teuer)."""
    for suffix in ("esten", "ester", "estes", "este", "sten", "ster", "stes", "ste",
                   "eren", "erer", "eres", "erem", "ere",
                   "en", "em", "er", "es", "e", "st"):  # fmt: skip
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)]
            yield stem
            if stem[-1] in "lr" and stem[-2] not in "aeiouäöüe":
                yield stem[:-1] + "e" + stem[-1]


GERMAN = Grammar(
    language="de",
    negations=_set(
        "nicht kein keine keinen keinem keiner keines nie niemals nichts niemand nirgends "
        "ohne weder"
    ),
    intensifiers=_boosters(
        "sehr total echt wirklich extrem absolut äußerst super besonders völlig vollkommen "
        "komplett richtig so höchst unglaublich ausgesprochen überaus mega rundum",
        "etwas bisschen kaum wenig einigermaßen halbwegs",
    ),
    contrasts=frozenset({"aber", "jedoch", "allerdings"}),
    not_negating_after=frozenset({"nur", "bloß", "als"}),
    negation_after_verb=True,
    not_polar=_set("geschickt blau"),  # "sent", "blue" (and "skilful", "drunk")
    lemmas=_german,
)


def _french(word: str) -> Iterator[str]:
    """French plural and feminine endings: -es, -s, -e, -x (déçues, nuls, heureux -> heureu…)."""
    for suffix in ("es", "s", "e", "x"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            yield word[: -len(suffix)]


FRENCH = Grammar(
    language="fr",
    # "ne … pas" counts once: a word is negated at most once, however many negations precede it
    negations=_set("ne n pas jamais rien aucun aucune ni sans"),
    intensifiers=_boosters(
        "très vraiment trop extrêmement super hyper tellement absolument totalement "
        "complètement vachement particulièrement hautement",
        "peu assez plutôt légèrement moyennement presque",
    ),
    contrasts=frozenset({"mais", "cependant", "pourtant", "toutefois"}),
    not_negating_after=frozenset({"que", "seulement"}),
    split_apostrophes=True,
    not_polar=_set("si tout tous toute toutes passé"),  # "if", "all", "past" ("outdated")
    lemmas=_french,
)

GRAMMARS: dict[str, Grammar] = {g.language: g for g in (ENGLISH, DUTCH, GERMAN, FRENCH)}
