"""`cxkpi soak` for 3 minutes (the CI length): every sent event is processed, the worker logs no
error, and once the largest window has filled its memory stays flat."""

from __future__ import annotations

import argparse
import itertools
import statistics
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream.tools.soak import options, run
from tests.servers import Broker, RedisServer

pytestmark = pytest.mark.integration

DURATION_S = 180
RATE = 150
SAMPLE_S = 5
#: The soak's own derivation: largest window (1m) + the longer of the cart retention (45s) and
#: the ticket retention (auto: 1m + grace, 70s) + grace (10s). By then every bucket of the
#: largest window holds data and the first carts' customers and solved tickets have been
#: forgotten, so the state stops growing.
WARMUP_S = 140
#: The product's bound on growth after the warm-up (the soak's default --max-growth).
MAX_GROWTH = 0.10
#: Slack on top: RSS grows in steps of allocator arenas and pages, and when the garbage collector
#: runs is a matter of timing. A few MiB on a worker of about 70 MiB absorbs one such step; a leak
#: proportional to the events (27 000 here, about 40 % of them after the warm-up) does not fit.
SLACK_MIB = 4.0


def soak_args(*argv: str) -> argparse.Namespace:
    """The arguments as `cxkpi soak` parses them."""
    parser = argparse.ArgumentParser(prog="cxkpi soak")
    options.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.timeout(300)
def test_soak_memory_stays_flat(broker: Broker, redis_server: RedisServer, tmp_path: Path) -> None:
    report_path = tmp_path / "soak.json"
    args = soak_args(
        *("--broker", broker.url, "--redis-url", redis_server.url, "--profile", "dev"),
        *("--duration", f"{DURATION_S}s", "--rate", str(RATE), "--sample-every", f"{SAMPLE_S}s"),
        *("--windows", "30s,1m", "--step", "5s", "--grace", "10s"),
        *("--inactivity-timeout", "30s", "--ticket-retention", "auto", "--cart-retention", "45s"),
        *("--resolution-median", "10s", "--drain-timeout", "60s"),
        *("--report", str(report_path), "--logs", str(tmp_path / "soak-logs")),
    )
    code = run.run(args)
    report: dict[str, Any] = orjson.loads(report_path.read_bytes())
    summary, samples = report["summary"], report["samples"]
    assert code == 0, report["failures"]
    assert report["warmup_s"] == WARMUP_S
    assert not Path(f"/proc/{report['worker_pid']}").exists(), "the worker is still running"

    # the samples cover the whole load, with no long gap
    load = [s for s in samples if s["phase"] == "load"]
    assert load[0]["t"] <= SAMPLE_S and load[-1]["t"] >= DURATION_S
    assert max(b["t"] - a["t"] for a, b in itertools.pairwise(load)) <= 3 * SAMPLE_S

    # a steady load, all of it processed (none dead-lettered, late or duplicate) by the end
    assert summary["sent"] >= 0.9 * RATE * DURATION_S
    assert summary["processed"] == summary["sent"]
    assert summary["outcomes"]["applied"] == summary["sent"]
    assert summary["outcomes"]["dead_lettered"] == 0
    assert all(s["outcomes"].get("dead_lettered", 0) == 0 for s in samples)
    # processing keeps up with sending: it never goes back and grows in every 30 s of the load
    processed = [s["processed"] for s in samples]
    assert processed == sorted(processed)
    for start in range(0, DURATION_S - 30 + 1, 30):
        inside = [s["processed"] for s in load if start <= s["t"] <= start + 30]
        assert inside[-1] > inside[0], f"nothing processed between {start} s and {start + 30} s"

    assert report["error_lines"] == []

    # flat memory: the last quarter's median against the RSS when the largest window had filled
    warm = summary["rss_warmup_mib"]
    assert summary["warmup_t"] >= WARMUP_S
    last_quarter = [s["rss_mib"] for s in load if s["t"] >= 0.75 * DURATION_S]
    assert len(last_quarter) >= 5
    assert statistics.median(last_quarter) <= warm * (1 + MAX_GROWTH) + SLACK_MIB, (
        warm,
        last_quarter,
    )
