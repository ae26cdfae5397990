"""Scorers by name, so a deployment selects one in its settings and an operator can plug in a
model of their own without changing this package.

A name is found, in order, among the built-in scorers ("lexicon"), those registered in code with
`register()`, and those installed packages declare as entry points of the group `cxkpi.scorers`
(the entry point is a callable with no arguments that returns a `Scorer`):

    [project.entry-points."cxkpi.scorers"]
    my-model = "my_package.sentiment:MyScorer"
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata

from stream.voice.engine import Lexicon
from stream.voice.scorer import Scorer, Sentiment, Thresholds

ENTRY_POINTS = "cxkpi.scorers"
DEFAULT = "lexicon"

_BUILT_IN: dict[str, Callable[[], Scorer]] = {"lexicon": Lexicon}
_registered: dict[str, Callable[[], Scorer]] = {}


def register(name: str, factory: Callable[[], Scorer]) -> None:
    """Make a scorer selectable by name (a built-in name cannot be taken)."""
    if name in _BUILT_IN:
        raise ValueError(f"{name!r} is a built-in scorer")
    _registered[name] = factory


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINTS)}


def names() -> list[str]:
    """Every name `create` accepts."""
    return sorted({*_BUILT_IN, *_registered, *_entry_points()})


def create(name: str = DEFAULT) -> Scorer:
    """A new scorer of that name; an unknown name, or a factory that does not give a `Scorer`,
    is an error that says which names there are."""
    factory = _BUILT_IN.get(name) or _registered.get(name)
    if factory is None:
        entry = _entry_points().get(name)
        if entry is None:
            raise KeyError(f"no sentiment scorer named {name!r} (have: {', '.join(names())})")
        factory = entry.load()
    scorer = factory()
    if not isinstance(scorer, Scorer):
        raise TypeError(f"scorer {name!r} has no name, languages and valence(text, language)")
    return scorer


def sentiment(name: str = DEFAULT, *, thresholds: Thresholds | None = None) -> Sentiment:
    """Detection and the named scorer, with the spec's thresholds unless others are given."""
    return Sentiment(create(name), thresholds=thresholds)
