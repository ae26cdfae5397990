"""`python -m bench.alerts.cost`: what the windows the change alerts add cost a worker.

The same generated log (26 hours of event time, the benchmark's mix) is applied to the states a
worker keeps, with the default windows and the change alerts off, then on (they add a 6 h window
and two 7 d baselines for the KPIs with a change alert). Measured, each in CPU time of this
process: applying the log (per event), rendering the merged document, and rendering the windowed
/metrics text; and the window series the states hold, the samples /metrics has, and its size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import generate_latest

from bench.eventlog import log_events
from bench.publishing import PARTITIONS, apply, empty_states
from stream.config.settings import Settings
from stream.contract.schemas import SOURCE_TOPICS
from stream.publish.document import window_renderer
from stream.publish.entries import partition_entry
from stream.publish.prometheus import _Families
from stream.wiring import document_shape

EVENTS = 200_000
RATE = 2.0  # events/s: 200,000 events are about 28 hours, so the 24 h window is full


@dataclass
class Cost:
    apply_us_per_event: float
    series: int
    document_ms: float
    metrics_ms: float
    metrics_samples: int
    metrics_bytes: int


def measure(settings: Settings, records: list) -> Cost:  # type: ignore[type-arg]
    states = empty_states(settings)
    started = time.process_time()
    apply(states, records)
    applied = time.process_time() - started
    shape = document_shape(settings, dict.fromkeys(SOURCE_TOPICS, PARTITIONS))
    entries = [partition_entry(s) for s in states.values()]
    started = time.process_time()
    for _ in range(3):
        shape.document(entries)
    document = (time.process_time() - started) / 3
    render = window_renderer(states.values(), shape.windows_ms, {}, settings.enabled, shape.extra)
    started = time.process_time()
    text = generate_latest(_Families(render()))
    metrics = time.process_time() - started
    return Cost(
        applied / len(records) * 1e6,
        sum(len(w.totals) for s in states.values() for w in s.windows),
        document * 1000,
        metrics * 1000,
        sum(1 for line in text.splitlines() if line and not line.startswith(b"#")),
        len(text),
    )


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m bench.alerts.cost",
        description="What the windows the change alerts add cost a worker: one generated log "
        f"({EVENTS:,} events) applied with the change alerts off, then on (the defaults); "
        "CPU per event, document and /metrics rendering, series held. No options.",
    ).parse_args(argv)
    off_file = Path(tempfile.mkdtemp()) / "no-change.toml"
    off_file.write_text("[change]\nenabled = false\n")
    off = Settings.load({"config": str(off_file)}, environ={})
    on = Settings.load({"config": "none"}, environ={})
    records = log_events(EVENTS, 5, RATE, datetime.now(UTC).replace(microsecond=0))
    figures = {"off": measure(off, records), "on": measure(on, records)}
    print(f"{EVENTS:,} events (about {EVENTS / RATE / 3600:.0f} h), {PARTITIONS} partitions/topic")
    print(f"{'':28}{'change alerts off':>20}{'on (defaults)':>16}{'ratio':>8}")
    for label, field, unit in (
        ("apply, per event", "apply_us_per_event", "µs"),
        ("window series held", "series", ""),
        ("render the document", "document_ms", "ms"),
        ("render windowed /metrics", "metrics_ms", "ms"),
        ("/metrics windowed samples", "metrics_samples", ""),
        ("/metrics windowed bytes", "metrics_bytes", ""),
    ):
        a, b = getattr(figures["off"], field), getattr(figures["on"], field)
        print(f"{label:28}{a:>17,.1f} {unit:2}{b:>13,.1f} {unit:2}{b / a:>7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
