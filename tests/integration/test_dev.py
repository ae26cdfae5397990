"""`cxkpi dev`, the one-command demo: KPIs move live, and Ctrl-C leaves nothing running."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.servers import ROOT, wait_until

pytestmark = pytest.mark.integration


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_demo_shows_live_kpis_and_ctrl_c_stops_everything() -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "stream", "dev", "--no-ui", "--rate", "50"],
        cwd=ROOT,
        env={**os.environ, "CXKPI_WEB_PORT": str(_port())},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True)
    reader.start()
    try:
        header = wait_until(
            lambda: next((x for x in lines if "redis redis://" in x), None), 90, "the demo to start"
        )
        ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", header)]
        assert len(ports) == 2 and all(listening(p) for p in ports)
        # NPS over the 5 m window has a value once the first minute bucket closes
        wait_until(
            lambda: any(re.search(r"NPS [+-]\d", x) for x in lines),
            200,
            "a live NPS value in the demo output",
        )
    finally:
        demo.send_signal(signal.SIGINT)
        code = _wait_or_terminate(demo, lines)
    assert code == 0, "".join(lines[-30:])
    reader.join(timeout=5)
    assert "stopping" in "".join(lines)
    time.sleep(0.5)
    assert not any(listening(p) for p in ports), "a child process still listens"


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
