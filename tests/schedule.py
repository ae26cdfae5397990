"""How `make test` runs the suite in parallel (pytest-xdist, `-n N`, --dist load): its own
scheduler, since xdist's hand each worker a batch of tests ahead, and a test queued behind a
3-minute one waits for it (docs/testing.md).

- Longest first: the integration tests by the time they take alone (`EXPECTED_S`), so that no
  long one starts last; the unit tests after them, filling the gaps while the long ones wait,
  the slow ones first (`UNIT_EXPECTED_S`: `make unit` ends with both processes busy to the
  last seconds, not one finishing a long test alone).
- Tests that share a costly module fixture (`TOGETHER`) go to one worker at once, which builds
  it once (one after another, each worker would build it).
- An xdist worker must know its next test before it runs one (to tear the fixtures down right):
  behind a long test that next one is a quick one, never another long one, and the worker asks
  again once it is done. Unit tests go out a few at a time.
- The CPU-bound tests (`CPU_BOUND`) run two at a time at most, and the tests whose assertions
  are timed (`TIMED`) once every CPU-bound one is done, three at a time at most: on two cores, a
  worker starved of CPU misses them (the 40-day test, both, runs after the other CPU-bound ones).

A test not listed counts as 10 s (integration) or as quick (unit): it runs, in its place."""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScheduling
from xdist.workermanage import WorkerController

#: Roughly how long the slow integration tests take alone on 2 cores, in seconds, by node id
#: prefix (the first that matches counts).
EXPECTED_S: dict[str, float] = {
    "tests/integration/test_soak.py": 195,
    "tests/integration/test_bench.py::test_quick": 190,
    "tests/integration/test_long_horizons.py::test_a_restart": 120,
    "tests/integration/test_long_horizons.py": 85,
    "tests/integration/test_crash_points.py::test_a_crash_at_each_point_of_the_checkpoint_leaves"
    "_the_kpis_exact[restored]": 65,
    "tests/integration/test_customers.py": 60,
    "tests/integration/test_broker_outage.py": 45,
    "tests/integration/test_scale_out.py": 45,
    "tests/integration/test_redis_outage.py": 42,
    "tests/integration/test_monitoring.py": 42,
    "tests/integration/test_shutdown.py": 38,
    "tests/integration/test_pipeline.py::test_sigkill": 33,
    "tests/integration/test_pipeline.py::test_bad_input": 33,
    "tests/integration/test_worker_process.py::test_worker_waits": 31,
    "tests/integration/test_restart_times.py": 30,
    "tests/integration/test_writer_takeover.py": 26,
    "tests/integration/test_crash_points.py": 25,
    "tests/integration/test_worker_process.py::test_readiness": 25,
}
#: Tests that keep a core busy for most of their run (a worker through a long log, and the
#: reference computation of it, or forty producer processes): at most `MAX_CPU_BOUND` at a time.
CPU_BOUND = (
    "tests/integration/test_long_horizons.py",
    "tests/integration/test_customers.py",
    "tests/integration/test_pipeline.py::test_bad_input",
)
#: Tests whose assertions are timed and fail when their worker is starved of CPU, not when the
#: code is wrong: a single worker's publish that must never be retried (`assert_published`: the
#: writer lease lasts 1.5 s, and a publish round slower than that, under load, outlives it), a
#: takeover within 6 s, a snapshot exact within 10 s of Redis returning, no dip of a fleet-wide
#: sum while partitions move. They start once every
#: CPU-bound test is done (the 40-day test, both, is the last of those).
TIMED = (
    "tests/integration/test_crash_points.py",
    "tests/integration/test_pipeline.py::test_published",
    "tests/integration/test_long_horizons.py::test_40_days",
    "tests/integration/test_writer_takeover.py",
    "tests/integration/test_redis_outage.py",
    # no dip of a fleet-wide sum while partitions move, and a takeover within seconds
    "tests/integration/test_monitoring_fleet.py",
)
#: The slow unit tests, in seconds of CPU each, by node id prefix (the first that matches
#: counts): `make unit` is about 80 s of CPU on 2 cores.
UNIT_EXPECTED_S: dict[str, float] = {
    "tests/unit/state/test_long_horizons.py::test_a_35_day": 11,  # with the module's fixture
    "tests/unit/state/test_long_horizons.py": 4,
    "tests/unit/kpis/test_engagement.py::test_a_generated_log_through_the_state_equals_the_"
    "reference[2-150-40]": 6.5,
    "tests/unit/test_reference.py::test_customer_kpis_of_the_rules_equal_the_reference": 6,
    "tests/unit/tools/test_shift.py::test_an_nps_drop": 3.5,
    "tests/unit/tools/test_generate.py::test_customers_return": 2.3,
    "tests/unit/tools/test_generate.py::test_every_event": 2,
    "tests/unit/test_reference.py::test_forty_days": 1.5,
    "tests/unit/tools/test_shift.py::test_a_cart": 1.5,
    "tests/unit/kpis/test_engagement.py::test_a_generated_log_through_the_state_equals_the_"
    "reference[3-80-12]": 1,
}
#: Tests sharing a module fixture that costs seconds: the reference over the 35-day log (6 s).
TOGETHER = ("tests/unit/state/test_long_horizons.py",)
MAX_CPU_BOUND = 2
#: Timed tests at a time: each catches a worker up on a log, a burst of CPU (with six at once, a
#: crash-point test's publish was retried once).
MAX_TIMED = 3
#: Behind a test expected to take longer than this, a worker's next test is a quick one.
LONG_S = 15.0
#: Unit tests go out this many at a time (one at a time, each would wait for a round trip).
QUICK_BATCH = 8


def expected_s(nodeid: str) -> float:
    if not nodeid.startswith("tests/integration/"):
        return next((s for prefix, s in UNIT_EXPECTED_S.items() if nodeid.startswith(prefix)), 0)
    return next((s for prefix, s in EXPECTED_S.items() if nodeid.startswith(prefix)), 10.0)


def together(nodeid: str) -> str | None:
    return next((prefix for prefix in TOGETHER if nodeid.startswith(prefix)), None)


class LongestFirst(LoadScheduling):
    """Sends each worker one test beyond the one it runs, a few unit tests at a time (see the
    module's text)."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        self.expected: list[float] = []
        self.cpu_bound: list[bool] = []
        self.timed: list[bool] = []
        self.group: list[str | None] = []

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self.collection is None:
            if not self._check_nodes_have_same_collection():
                self.log("**Different tests collected, aborting run**")
                return
            self.collection = next(iter(self.node2collection.values()))
            self.expected = [expected_s(nodeid) for nodeid in self.collection]
            self.cpu_bound = [nodeid.startswith(CPU_BOUND) for nodeid in self.collection]
            self.timed = [nodeid.startswith(TIMED) for nodeid in self.collection]
            self.group = [together(nodeid) for nodeid in self.collection]
            unit = [nodeid.startswith("tests/unit/") for nodeid in self.collection]
            groups: dict[str | None, float] = {}
            for group, seconds in zip(self.group, self.expected, strict=True):
                groups[group] = groups.get(group, 0) + seconds
            # a group counts as long as all of it takes
            longest = [
                groups[g] if g else s for g, s in zip(self.group, self.expected, strict=True)
            ]
            # the timed ones last (they wait anyway), the unit tests before them, each longest
            # first; sorted() is stable
            self.pending[:] = sorted(
                range(len(self.collection)),
                key=lambda i: (self.timed[i], unit[i], -longest[i]),
            )
        self._fill_all()

    def mark_test_complete(
        self, node: WorkerController, item_index: int, duration: float = 0
    ) -> None:
        self.node2pending[node].remove(item_index)
        self._fill_all()  # a CPU-bound test done may free another worker's next test

    def mark_test_pending(self, item: str) -> None:
        assert self.collection is not None
        self.pending.insert(0, self.collection.index(item))
        self._fill_all()

    def check_schedule(self, node: WorkerController, duration: float = 0) -> None:
        self._fill_all()

    def _fill_all(self) -> None:
        for node in self.nodes:
            self._fill(node)

    def _fill(self, node: WorkerController) -> None:
        if node.shutting_down:
            return
        queue = self.node2pending[node]
        while self.pending and (
            len(queue) < 2  # what it runs, and its next
            or (len(queue) < QUICK_BATCH and all(self.expected[i] == 0 for i in queue))
        ):
            index = self._choose(node)
            if index is None:
                return  # every test left waits for a CPU-bound one elsewhere: asked again later
            group = self.group[index]
            indices = [i for i in self.pending if group and self.group[i] == group] or [index]
            for i in indices:  # the test, or all of its group left
                self.pending.remove(i)
                queue.append(i)
            node.send_runtest_some(indices)
        if not self.pending:
            node.shutdown()  # the worker then runs what it holds, the last without a next

    def _choose(self, node: WorkerController) -> int | None:
        """The node's next test. What the node itself holds runs before it, so only the other
        nodes' tests and those not yet sent can hold it back (and it never waits for itself)."""
        elsewhere = [i for n, q in self.node2pending.items() if n is not node for i in q]
        cpu_elsewhere = sum(self.cpu_bound[i] for i in elsewhere)
        timed_elsewhere = sum(self.timed[i] for i in elsewhere)
        cpu_left = {i for i in (*elsewhere, *self.pending) if self.cpu_bound[i]}
        allowed = [
            i
            for i in self.pending
            if not (self.cpu_bound[i] and cpu_elsewhere >= MAX_CPU_BOUND)
            and not (self.timed[i] and (cpu_left - {i} or timed_elsewhere >= MAX_TIMED))
        ]
        if not allowed:
            return None
        queue = self.node2pending[node]
        if any(self.expected[i] > LONG_S for i in queue):  # behind a long test: the quickest
            return min(reversed(allowed), key=lambda i: self.expected[i])
        return allowed[0]
