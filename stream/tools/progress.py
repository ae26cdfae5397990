"""A progress bar for long work (generation, producing), quiet when output is not a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


@contextmanager
def progress_bar(
    label: str, total: int | None, *, unit: str, disable: bool = False
) -> Iterator[Callable[[int], None]]:
    """Yields advance(n); shows a bar on stderr when it is a terminal."""
    amount = TransferSpeedColumn() if unit == "B" else MofNCompleteColumn()
    with Progress(
        TextColumn(f"{label}"),
        BarColumn(),
        TaskProgressColumn(),
        amount,
        TimeRemainingColumn(),
        disable=disable,
        transient=False,
    ) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)
