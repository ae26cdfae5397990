"""Argument types of the command line: each rejects a bad value with a sentence saying what is
allowed, which argparse prints on one line with exit code 2 (never a traceback)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from stream.config import parse_duration
from stream.tools.shift import Shift, parse_shift

N = TypeVar("N", int, float)


def duration(text: str) -> float:
    """A duration greater than zero: 30s, 5m, 1h."""
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not {exc}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration greater than zero")
    return value


def count(text: str) -> int:
    """A whole number greater than zero."""
    return _positive(text, int, "a whole number")


def rate(text: str) -> float:
    """A number greater than zero (events per second)."""
    return _positive(text, float, "a number")


def share(text: str) -> float:
    """A number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 1")
    return value


def _positive(text: str, convert: Callable[[str], N], what: str) -> N:
    try:
        value = convert(text)
    except ValueError:
        value = convert("0")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what} greater than zero")
    return value


def out_file(text: str) -> Path:
    """A file to write, whose folder exists ('-' stays '-': standard output)."""
    path = Path(text)
    if text == "-":
        return path
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file name in it")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"folder {str(path.parent)!r} does not exist")
    return path


def shift(text: str) -> Shift:
    """A change to inject into generated traffic (stream/tools/shift.py)."""
    try:
        return parse_shift(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
