"""Argument types of the command line: each rejects a bad value with a sentence saying what is
allowed, which argparse prints on one line with exit code 2 (never a traceback)."""

from __future__ import annotations

import argparse
from pathlib import Path

from stream.config import parse_duration


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
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number greater than zero")
    return value


def rate(text: str) -> float:
    """A number greater than zero (events per second)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number greater than zero")
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
