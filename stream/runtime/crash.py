"""TEST HOOK, not a feature: the worker kills itself with SIGKILL at a named crash point.

`CXKPI_CRASH_AT=<point>:<n>` in the environment of a starting worker arms it: the n-th time a
flush round or a recovery passes the point having done that step (records sent, orders sent,
...), the worker SIGKILLs its own process, as a power cut would stop it there. The points are
stream/runtime/checkpoint.py's (`POINTS`); docs/architecture.md says why a crash at each is
safe, and tests/integration/test_crash_points.py proves it at every one.

It is deliberately not a setting (no flag, no `--help`, no cxkpi.toml key): nothing but that
test should set it, and the worker logs a warning at start when it is armed. Unset, it costs one
`is None` test per step of a flush round, never one per record.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Collection, Mapping

from stream.config import ConfigError

log = logging.getLogger(__name__)

ENV = "CXKPI_CRASH_AT"


class CrashAt:
    """Kills this process the `nth` time `point` is reached."""

    def __init__(self, point: str, nth: int) -> None:
        self.point = point
        self.nth = nth
        self.count = 0

    def reached(self, point: str, where: str) -> None:
        """A step named `point` was just done (`where`: the topic, for the log line)."""
        if point != self.point:
            return
        self.count += 1
        if self.count < self.nth:
            return
        log.warning(
            "crash point %s reached (%d, %s): SIGKILL (test hook %s)", point, self.count, where, ENV
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def crash_at(points: Collection[str], environ: Mapping[str, str] | None = None) -> CrashAt | None:
    """The hook armed by the environment (read once, at start), or None."""
    spec = (os.environ if environ is None else environ).get(ENV, "")
    if not spec:
        return None
    point, _, nth = spec.rpartition(":")
    if point not in points or not nth.isdigit() or int(nth) < 1:
        raise ConfigError(
            f"invalid {ENV} {spec!r}: expected <point>:<n>, n >= 1, a point one of "
            + ", ".join(points)
        )
    log.warning("test hook %s=%s armed: this worker will SIGKILL itself there", ENV, spec)
    return CrashAt(point, int(nth))
