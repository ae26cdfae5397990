"""The benchmark harnesses work end to end. `python -m bench.run --quick`: every phase runs, every
figure is a positive number in the JSON file, and the table names each measurement. The figures
of so small a run mean nothing; CI only proves the harness."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from bench.cpu import proc_stat
from bench.report import MAY_BE_ZERO, ROWS, TARGETS
from tests.servers import ROOT, Worker, wait_until

pytestmark = pytest.mark.integration


def test_quick_benchmark_writes_every_figure_and_prints_the_table(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--quick",
            "--out",
            str(out),
            "--workdir",
            str(tmp_path / "logs"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    results = orjson.loads(out.read_bytes())
    figures = results["figures"]
    for figure, label, _ in ROWS:
        value = figures.get(figure)
        assert isinstance(value, int | float), f"{figure}: {value!r}"
        assert value >= 0 if figure in MAY_BE_ZERO else value > 0, f"{figure}: {value!r}"
        assert label in result.stdout, f"the table does not show {label!r}:\n{result.stdout}"
    assert set(results["targets"]) == {t.figure for t in TARGETS}
    assert all(t["status"] in ("PASS", "FAIL") for t in results["targets"].values())
    assert results["config"]["repeat"] == 1
    assert results["machine"]["nproc"] >= 1
    assert all(len(results["runs"][name]) == 1 for name in ("full", "floor", "raised_floor"))
    assert {topic for topic, r in results["remembered"].items() if r["count"]} == {
        "tickets",
        "cart-events",
    }


def test_the_cpu_harness_prints_a_workers_rate_and_cost_per_event() -> None:
    """`python -m bench.cpu` runs one production worker over a log to the end (large enough that
    most of it is processed after the worker says it is ready, where the CPU is counted)."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.cpu", "--events", "20000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    line = re.search(
        r"([\d,]+) events/s over ([\d.]+) s; worker CPU ([\d.]+) s from ready to done, "
        r"(\d+) µs per event; peak RSS (\d+) MB",
        result.stdout,
    )
    assert line is not None, result.stdout
    rate, seconds, cpu, per_event, peak = (float(g.replace(",", "")) for g in line.groups())
    assert rate > 0 and seconds > 0 and cpu > 0 and per_event > 0
    assert 20 < peak < 2000  # a worker's resident memory, in MB


def test_the_cpu_harness_stopped_by_sigterm_stops_what_it_started() -> None:
    """`kill` (or a job's timeout) mid-run: the broker, redis-server and worker it started live
    in sessions of their own, so only the harness can stop them, and it does before it exits."""
    bench = subprocess.Popen(
        [sys.executable, "-m", "bench.cpu", "--events", "100000"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started: list[int] = []
    try:
        # the broker and redis-server first, the worker once the log is produced: mid-run
        started = wait_until(
            lambda: at_least(3, children(bench.pid)),
            timeout=240,
            what="the harness's broker, redis-server and worker",
        )
        bench.send_signal(signal.SIGTERM)
        _, err = bench.communicate(timeout=120)
        assert bench.returncode == 130, err
        assert "interrupted" in err
        wait_until(
            lambda: not [pid for pid in started if alive(pid)],
            timeout=10,
            what=f"{started} to be gone",
        )
    finally:  # what a failed run left behind
        for pid in [bench.pid, *started]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_worker_that_ignores_the_interrupt_is_killed_after_the_timeout(tmp_path: Path) -> None:
    """The harness interrupts its worker (a profiler wrapping it writes its profile then); one
    that does not stop, as a worker interrupted while it starts may not, is killed after the
    timeout, so that the harness still stops what it started rather than fail waiting."""
    ignores = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGINT, "
        "signal.SIG_IGN); print('ready', flush=True); time.sleep(120)",
        "--",
    ]
    log = tmp_path / "worker.log"
    worker = Worker({}, log, wrapper=ignores)  # the wrapper runs, and ignores the interrupt
    wait_until(lambda: "ready" in log.read_text(), timeout=30, what="the process to start")
    worker.interrupt(timeout=1)
    assert worker.process.returncode == -signal.SIGKILL


def children(pid: int) -> list[int]:
    """The processes a process started that are still its children."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def at_least(count: int, pids: list[int]) -> list[int] | None:
    return pids if len(pids) >= count else None


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie, exited but not yet reaped, does not)."""
    try:
        state = proc_stat(pid)[0]
    except FileNotFoundError:
        return False
    return state != "Z"
