"""`python -m bench.users`: the peak RSS of a process whose `activity` partition state holds a
million users active in the 30 d window (the issue's target: at most 1 GB in one worker).

Each user has one page view in a session of its own, spread evenly over the last 30 days, under
the default windows and the production settings: the state then holds every user as the worker
would, most of them forgotten into a memory and their samples in the buckets. The process is a
fresh one, so its peak RSS (VmHWM) is the interpreter, the modules and this state; a worker adds
Faust, aiokafka and its buffers, which `make bench` measures apart (the memory phase's empty
worker) and adds to this figure.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import orjson

from stream.config.settings import Settings
from stream.contract.events import Event, decode
from stream.publish.document import format_time
from stream.state.partition import PartitionState
from stream.tools.progress import progress_bar
from stream.wiring import state_config, topic_rules

#: Keys the users, as the worker's customer key secret does.
SECRET = b"bench-secret-of-32-bytes-at-least"
MONTH_MS = 30 * 86400 * 1000
FLUSH_EVERY = 5000  # events between changelog flushes, as a worker's flush rounds would


def fill(users: int, quiet: bool = False) -> tuple[PartitionState, float]:
    """A state holding `users` users active in the last 30 days, and the CPU seconds it took."""
    settings = Settings.load({"config": "none"}, environ={})
    rules = next(r for r in topic_rules(settings) if r.topic == "activity")
    state = PartitionState("activity", 0, rules, state_config(settings))
    end = time.time_ns() // 1_000_000 - 3_600_000
    started = time.process_time()
    with progress_bar("users", users, unit="users", disable=quiet) as advance:
        for n in range(users):
            event = {
                "event_id": f"e{n}",
                "type": "page_viewed",
                "occurred_at": format_time(end - MONTH_MS + MONTH_MS * n // users),
                "user_id": f"user-{n}",
                "session_id": f"s{n}",
                "channel": ("web", "app", "store")[n % 3],
                "region": ("eu", "us", "apac")[n % 3],
            }
            decoded = decode(
                orjson.dumps(event),
                "activity",
                max_bytes=65536,
                now_ms=end + 3_600_000,
                max_future_ms=3_600_000,
                customer_secret=SECRET,
            )
            assert isinstance(decoded, Event), decoded
            state.apply(decoded, n)
            if (n + 1) % FLUSH_EVERY == 0 or n + 1 == users:
                state.flush()
                advance(n % FLUSH_EVERY + 1)
    return state, time.process_time() - started


def peak_rss() -> int:
    """This process's peak RSS (VmHWM), in bytes. Not getrusage's ru_maxrss: Linux keeps that
    across exec, so a child started by a large parent would report the parent's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def peak_rss_bytes(users: int) -> int:
    """The peak RSS of a fresh process filled with `users` users (this module, run apart)."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.users", "--users", str(users), "--quiet"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout.split("peak RSS ", 1)[1].split(" B", 1)[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.users",
        description="Peak RSS of an activity partition state holding many users active in the "
        "30 d window (one page view each, spread over 30 days), in a fresh process.",
    )
    parser.add_argument(
        "--users", type=int, default=1_000_000, help="users active in 30 d (default 1,000,000)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.users < 1:
        parser.exit(2, "error: --users must be at least 1\n")
    state, cpu = fill(args.users, args.quiet)
    peak = peak_rss()
    held = len(state.entities) + len(state.memories)
    print(
        f"{args.users:,} users ({held:,} held: {len(state.memories):,} as memories) in "
        f"{cpu:.0f} s of CPU; peak RSS {peak} B ({peak / 2**20:,.0f} MB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
