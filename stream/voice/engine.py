"""The rule engine: one language's lexicon and grammar turn a text into a score in [-1, 1].

The rules are VADER's (Hutto & Gilbert, 2014), written anew so that one engine serves every
language, runs in time linear in the text, and can be read rule by rule:

1. Words are looked up, lower-cased, in the customer-experience words (domain.py), then in the
   lexicon (valence -4..4); a word not found is looked up again in the other forms the grammar
   gives (inflections). Emoji and emoticons have their own valences (emoji.py).
2. A word in ALL CAPS among words that are not gains 0.733 in its direction.
3. An intensifier among the three words before a polar word adds 0.293 to its magnitude (a
   dampener takes it away), 95 % of that two words back, 90 % three words back. One that is
   not right before a polar word is scored as a word ("Super!", "super service").
4. A negation among the three words before a polar word multiplies its valence by -0.74, once
   however many negations there are ("ne … pas"). In Dutch and German a negation with no polar
   word after it negates the last polar word among the three before it if that one is
   positive ("Das gefällt mir nicht"): in verb-second order that is the verb; a negative word
   there is nearly always a sentence adverb ("Leider geht es nicht", "Helaas werkt het niet")
   that the negation leaves as it is.
   Rules 3 and 4 stay inside a clause: punctuation and contrast words end their reach.
5. The first contrast word ("but", "maar", "aber", "mais") halves what comes before it and weighs
   what comes after it one and a half times.
6. Each "!" (at most 4) adds 0.292 to the sum in its direction.
7. The sum s becomes s / √(s² + 15), rounded to 4 decimals.

Cost: at most `MAX_TOKENS` tokens are scored, each with a bounded amount of work (dictionary
look-ups and a look back of three tokens), so no input is slow; the lemma look-ups of unknown
words are cached.
"""

from __future__ import annotations

import math
import re
import threading
from functools import lru_cache

from stream.voice import domain, emoji, lexicons
from stream.voice.grammar import GRAMMARS, Grammar

#: Multiplies a negated valence (VADER's N_SCALAR).
NEGATION = -0.74
#: Added to the magnitude of a polar word in ALL CAPS among lower-case words (VADER's C_INCR).
CAPS = 0.733
#: Added to the sum's magnitude per "!" (VADER's), counted up to `MAX_EXCLAMATIONS`.
EXCLAMATION = 0.292
MAX_EXCLAMATIONS = 4
#: Before and after the first contrast word (VADER's "but" rule).
BEFORE_CONTRAST, AFTER_CONTRAST = 0.5, 1.5
#: How far back an intensifier or a negation reaches, and how it fades with distance.
REACH = (1.0, 0.95, 0.9)
#: s / sqrt(s² + ALPHA) maps a sum of valences into (-1, 1) (VADER's normalisation).
ALPHA = 15.0
#: Tokens past this many are not scored: a guard, far above what 5,000 characters of prose hold.
MAX_TOKENS = 1200
#: Signs that end a clause (the reach of negations and intensifiers).
BOUNDARIES = frozenset('.,;:!?…()[]"“”«»\u2013\u2014')

_WORD = r"[^\W\d_]+"
_TOKENS = re.compile(rf"{_WORD}(?:['\u2019]{_WORD})*|[^\w\s]")
_TOKENS_ELIDED = re.compile(rf"{_WORD}|[^\w\s]")


def _words_and_signs(found: list[str]) -> tuple[list[str], list[bool]]:
    """The tokens of what the token pattern found, lower-cased, and whether each is ALL CAPS
    (emoji modifiers are left out)."""
    kept = [token for token in found if token not in emoji.MODIFIERS][:MAX_TOKENS]
    return (
        [token.lower().replace("\u2019", "'") for token in kept],
        [len(token) > 1 and token.isupper() for token in kept],
    )


class LexiconScorer:
    """VADER's rules over one language's lexicon. Immutable once built: safe to share."""

    def __init__(
        self, grammar: Grammar, lexicon: dict[str, float], domain: dict[str, float] | None = None
    ) -> None:
        self.grammar = grammar
        self.language = grammar.language
        self.lexicon = lexicon
        self.domain = domain or {}
        self.signs = emoji.table()
        self.emoticons = emoji.emoticons()
        self._tokens = _TOKENS_ELIDED if grammar.split_apostrophes else _TOKENS
        self.lookup = lru_cache(maxsize=8192)(self._lookup)

    @classmethod
    def for_language(cls, language: str) -> LexiconScorer:
        return cls(GRAMMARS[language], lexicons.words(language), domain.words(language))

    def _lookup(self, word: str) -> float:
        """A word's valence: the customer-experience form as listed, else the lexicon's, through
        its other forms if it is not listed itself; 0 if none, or for a function word."""
        if word in self.grammar.not_polar:
            return 0.0
        valence = self.domain.get(word)
        if valence is not None:
            return valence
        valence = self.lexicon.get(word)
        if valence is None and len(word) > 3:
            for form in self.grammar.lemmas(word):
                if form in self.grammar.not_polar:
                    return 0.0
                if (valence := self.lexicon.get(form)) is not None:
                    break
        return valence or 0.0

    def tokenize(self, text: str) -> tuple[list[str], list[bool]]:
        """Lower-cased tokens (words, emoticons, single signs) and whether each is ALL CAPS."""
        chunks = text.split()
        if self.emoticons.keys().isdisjoint(chunks):  # no token spans a space: all at once
            return _words_and_signs(self._tokens.findall(text))
        tokens: list[str] = []
        caps: list[bool] = []
        for chunk in chunks:
            if chunk in self.emoticons:
                tokens.append(chunk)
                caps.append(False)
            else:
                words, capitals = _words_and_signs(self._tokens.findall(chunk))
                tokens += words
                caps += capitals
            if len(tokens) >= MAX_TOKENS:
                return tokens[:MAX_TOKENS], caps[:MAX_TOKENS]
        return tokens, caps

    def _is_negation(self, tokens: list[str], j: int) -> bool:
        g = self.grammar
        token = tokens[j]
        if token not in g.negations and not (
            g.negation_suffix and token.endswith(g.negation_suffix)
        ):
            return False
        return j + 1 >= len(tokens) or tokens[j + 1] not in g.not_negating_after

    def valence(self, text: str) -> float:
        """The text's score in [-1, 1] (rules 1-7 of the module's docstring)."""
        return self._score(*self.tokenize(text))[0]

    def explain(self, text: str) -> tuple[float, list[tuple[str, float]]]:
        """The score and each token with what it contributed to the sum (after rules 2-5)."""
        tokens, caps = self.tokenize(text)
        value, scores = self._score(tokens, caps)
        return value, list(zip(tokens, scores, strict=True))

    def _score(self, tokens: list[str], caps: list[bool]) -> tuple[float, list[float]]:
        """The score and each token's part of the sum."""
        g = self.grammar
        n = len(tokens)
        # rule 2 applies only when some words, not all, are in capitals
        shouting = 0 < sum(caps) < sum(1 for t in tokens if t[0].isalpha())
        scores = [0.0] * n
        negated = [False] * n
        starts = [0] * n  # first token of each token's clause
        used: set[int] = set()  # negations that negated a word after them
        start, contrast = 0, -1
        for i, token in enumerate(tokens):
            starts[i] = start
            if token in BOUNDARIES:
                start = i + 1
                continue
            if token in g.contrasts:
                contrast = i if contrast < 0 else contrast
                start = i + 1
                continue
            sign = self.signs.get(token)
            if sign is None:
                sign = self.emoticons.get(token)
            if sign is not None:
                scores[i] = sign
                continue
            if not token[0].isalpha() or token in g.negations:
                continue
            # an intensifier followed by no polar word modifies nothing: it is a word ("Super!",
            # "super service", "bien emballé")
            if token in g.intensifiers and i + 1 < n and self.lookup(tokens[i + 1]):
                continue
            valence = self.lookup(token)
            if not valence:
                continue
            direction = 1.0 if valence > 0 else -1.0
            if shouting and caps[i]:
                valence += CAPS * direction
            negation = -1
            for distance, fade in enumerate(REACH, start=1):
                j = i - distance
                if j < start:
                    break
                boost = g.intensifiers.get(tokens[j])
                if boost is not None:
                    boost += CAPS if shouting and caps[j] and boost > 0 else 0.0
                    valence += boost * fade * direction
                elif negation < 0 and self._is_negation(tokens, j):
                    negation = j
            if negation >= 0:
                valence *= NEGATION
                negated[i] = True
                used.add(negation)
            scores[i] = valence
        if g.negation_after_verb:
            self._negate_backwards(tokens, scores, negated, starts, used)
        if contrast >= 0:
            for i in range(n):
                if scores[i]:
                    scores[i] *= BEFORE_CONTRAST if i < contrast else AFTER_CONTRAST
        total = sum(scores)
        if total:
            exclamations = min(tokens.count("!"), MAX_EXCLAMATIONS)
            total += EXCLAMATION * exclamations * (1.0 if total > 0 else -1.0)
        return round(total / math.sqrt(total * total + ALPHA), 4), scores

    def _negate_backwards(
        self,
        tokens: list[str],
        scores: list[float],
        negated: list[bool],
        starts: list[int],
        used: set[int],
    ) -> None:
        """Rule 4, verb-second order: a negation that negated nothing after it negates the last
        polar word among the three before it in its clause, if that word is positive and not
        negated already."""
        for j in range(len(tokens)):
            if j in used or not self._is_negation(tokens, j):
                continue
            for k in range(j - 1, max(starts[j], j - len(REACH)) - 1, -1):
                if scores[k] and tokens[k][0].isalpha():
                    if scores[k] > 0 and not negated[k]:
                        scores[k] *= NEGATION
                        negated[k] = True
                    break


class Lexicon:
    """The built-in scorer ("lexicon"): the engine over each supported language's lexicon."""

    name = "lexicon"
    languages = frozenset(GRAMMARS)

    def __init__(self) -> None:
        self._scorers: dict[str, LexiconScorer] = {}
        self._lock = threading.Lock()

    def scorer(self, language: str) -> LexiconScorer:
        """One language's engine, built at first use (its lexicon read once)."""
        scorer = self._scorers.get(language)
        if scorer is None:
            with self._lock:
                scorer = self._scorers.get(language)
                if scorer is None:
                    scorer = self._scorers[language] = LexiconScorer.for_language(language)
        return scorer

    def valence(self, text: str, language: str) -> float | None:
        if language not in self.languages:
            return None
        return self.scorer(language).valence(text)
