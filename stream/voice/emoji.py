"""Valence of emoji and emoticons, the same in every language.

VADER replaces an emoji by its English name and scores the words of it, which leaves the signs
customers use most without a valence ("thumbs down", "pouting face", "face with symbols on mouth"
have no lexicon word) and makes 🔥 negative ("fire"). So the common ones get a valence of their
own here, written for this project on VADER's scale (-4..4), a reader can check them one by one;
every other emoji keeps VADER's reading (the sum of the lexicon valences of its name's words).
Emoticons (`:)`, `:-(`, `<3`) are VADER's lexicon entries, unchanged.
"""

from __future__ import annotations

import re
import threading

from stream.voice import lexicons

#: The common emoji of customer feedback and social posts. 0 marks one that is used both ways
#: (🔥 "great" or "on fire", 😂 laughing with or at), so VADER's reading is not used for it.
OWN: dict[str, float] = {
    # faces, positive
    "😀": 2.0, "😃": 2.0, "😄": 2.0, "😁": 2.0, "😆": 2.0, "😊": 2.0, "🙂": 1.0, "😉": 1.0,
    "😍": 3.0, "🥰": 3.0, "😘": 2.0, "🤩": 3.0, "😎": 1.5, "🥳": 2.5, "😇": 1.5, "🤗": 2.0,
    "😋": 2.0, "😌": 1.0,
    # faces, negative
    "😡": -3.0, "🤬": -3.5, "😠": -2.5, "😤": -2.0, "😞": -2.0, "😔": -1.5, "😢": -2.0,
    "😭": -2.5, "😩": -2.0, "😫": -2.0, "😒": -1.5, "🙄": -1.5, "😑": -1.0, "😕": -1.0,
    "🙁": -1.5, "☹": -2.0, "😖": -2.0, "😣": -1.5, "😰": -2.0, "😱": -2.0, "🤮": -3.0,
    "🤢": -2.5, "🤦": -2.0, "🤡": -1.5, "😬": -1.0,
    # hands, hearts, signs
    "👍": 2.0, "👌": 1.5, "👏": 2.0, "🙌": 2.0, "🙏": 1.0, "💪": 1.5, "👎": -2.0,
    "❤": 3.0, "💕": 3.0, "💖": 3.0, "💗": 3.0, "💓": 3.0, "💙": 2.5, "💚": 2.5, "💛": 2.5,
    "💜": 2.5, "🧡": 2.5, "💔": -3.0, "💯": 2.0, "⭐": 1.5, "🌟": 2.0, "✨": 1.5, "🎉": 2.0,
    "🏆": 2.0, "🥇": 2.0, "✅": 1.0, "❌": -1.0, "💩": -2.5,
    # both ways
    "🔥": 0.0, "😂": 0.0, "🤣": 0.0, "😅": 0.0, "🙃": 0.0,
}  # fmt: skip

#: Code points that only change how the previous sign looks (variation selectors, skin tones,
#: the zero-width joiner): they carry no valence and are skipped.
MODIFIERS = frozenset(["\ufe0e", "\ufe0f", "\u200d", *(chr(c) for c in range(0x1F3FB, 0x1F400))])

_NAME_WORD = re.compile(r"[a-z]+")
_lock = threading.Lock()
_table: dict[str, float] = {}


def _from_name(name: str, english: dict[str, float]) -> float:
    """VADER's reading of an emoji: the valences of its name's words, summed, within ±4."""
    total = sum(english.get(w, 0.0) for w in _NAME_WORD.findall(name.lower()))
    return max(-4.0, min(4.0, total))


def table() -> dict[str, float]:
    """Single-code-point emoji with a valence (read once; callers must not change it)."""
    with _lock:
        if not _table:
            english = lexicons.words("en")
            for emoji, name in lexicons.emoji_descriptions().items():
                sign = emoji.rstrip("\ufe0f")
                if len(sign) == 1 and (valence := _from_name(name, english)):
                    _table[sign] = valence
            _table.update({e: v for e, v in OWN.items()})
            for sign in [e for e, v in _table.items() if v == 0.0]:
                del _table[sign]
        return _table


def emoticons() -> dict[str, float]:
    """Emoticons with a valence, matched as a whole whitespace-separated chunk."""
    return lexicons.emoticons()
