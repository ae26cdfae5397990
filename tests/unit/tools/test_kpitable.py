"""The demo's KPI table: a column per window (long ones too), a window still filling marked."""

from __future__ import annotations

from rich.console import Console

from stream.tools.kpitable import kpi_table, summary_line
from tests.unit.feed import Feed


def shown(document: dict) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(kpi_table(document))
    return console.export_text()


def test_every_window_is_a_column_and_a_filling_one_says_so() -> None:
    feed = Feed("tickets")
    feed("t1", "ticket_opened", 0, team="billing")
    feed("t2", "ticket_opened", 3 * 60)  # S = 3 h: t1 is 3 hours old
    document = feed.document()
    text = shown(document)
    assert "5m" in text and "1h" in text and "(filling)" not in text
    assert "open backlog: 2 tickets, the oldest open 3.0 h" in text
    document["windows"]["1h"]["complete"] = False
    assert "1h (filling)" in shown(document)
    assert summary_line(document).startswith(f"[{document['valid_at']}] 5m: ")
