"""`cxkpi dev`, the one-command demo: KPIs move live, and Ctrl-C leaves nothing running."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.servers import ROOT, wait_until

pytestmark = pytest.mark.integration


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_demo(web_port: int | None = None) -> tuple[subprocess.Popen[str], list[str]]:
    """`cxkpi dev` with its output in a pipe, as under `make demo | tee demo.log` or CI: no
    --no-ui, the demo sees no terminal. Returns the process and its output lines so far."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "stream", "dev", "--rate", "50"],
        cwd=ROOT,
        env={**os.environ, "CXKPI_WEB_PORT": str(web_port or _port())},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True).start()
    return demo, lines


def test_demo_without_a_terminal_prints_plain_lines_and_ctrl_c_stops_everything() -> None:
    """Its web port is taken by another process (as 6066 may be): the demo serves on another,
    says which, and shows its own worker's values."""
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen()
    taken = other.getsockname()[1]
    demo, lines = start_demo(taken)
    try:
        header = wait_until(
            lambda: next((x for x in lines if "redis redis://" in x), None), 90, "the demo to start"
        )
        ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", header)]
        assert len(ports) == 2 and all(listening(p) for p in ports)
        (moved,) = [x for x in lines if "is taken by another process" in x]
        served = int(re.findall(r"127\.0\.0\.1:(\d+)", moved)[0])
        assert f"port {taken} is taken" in moved and served != taken
        metrics = next(x for x in lines if "metrics " in x)
        assert f"127.0.0.1:{served}/metrics" in metrics
        # until the first step closes, it says what it waits for and when values come (unless
        # the step closed within the second its first events came: then there is no wait)
        wait_until(
            lambda: any("values appear" in x or re.search(r"NPS [+-]\d", x) for x in lines),
            60,
            "the demo to say what it awaits",
        )
        # NPS over the 5 m window has a value once the first minute bucket closes
        wait_until(
            lambda: any(re.search(r"NPS [+-]\d", x) for x in lines),
            200,
            "a live NPS value in the demo output",
        )
        assert not any("\x1b" in x for x in lines), "terminal escape sequences in a pipe"
    finally:
        demo.send_signal(signal.SIGINT)
        code = _wait_or_terminate(demo, lines)
        other.close()
    assert code == 0, "".join(lines[-30:])
    wait_until(lambda: "stopping" in "".join(lines), 5, "the demo to say it stops")
    wait_until(lambda: not any(listening(p) for p in ports), 0.5, "no child to listen", 0.05)


def test_demo_shows_the_log_of_a_child_that_dies_and_keeps_it() -> None:
    demo, lines = start_demo()
    try:
        wait_until(lambda: any("logs " in x for x in lines), 90, "the demo to start")
        worker = wait_until(lambda: _child(demo.pid, "worker"), 10, "the demo's worker")
        os.kill(worker, signal.SIGKILL)
        code = demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
            _wait_or_terminate(demo, lines)
    output = "".join(lines)
    assert code == 1, output[-3000:]
    assert "the worker exited with code -9; the end of" in output
    assert "INFO stream.tools.cli: settings:" in output, "the last lines of the worker's log"
    kept = re.search(r"logs kept in (\S+)", output)
    assert kept is not None and (Path(kept.group(1)) / "worker.log").is_file()
    shutil.rmtree(kept.group(1))


def _child(pid: int, command: str) -> int | None:
    """The pid of a child process of pid whose command line has `command`, if any."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if command in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[-2].decode():
                return int(child)
    return None


def _wait_or_terminate(demo: subprocess.Popen[str], lines: list[str]) -> int:
    """The demo's exit code after Ctrl-C; if it does not stop, SIGTERM (which stops its
    children too), then SIGKILL, and the test fails with its output."""
    try:
        return demo.wait(timeout=60)
    except subprocess.TimeoutExpired:
        demo.terminate()
        try:
            demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
        output = "".join(lines[-30:])
        pytest.fail(f"cxkpi dev did not stop within 60 s of Ctrl-C; its output:\n{output}")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
