"""The demo's HTTP port: taken by another process, the demo picks a free one, and it waits for
its own worker to listen, never for whatever answers on the port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from stream.tools.devservers import (
    DevServerUnavailable,
    choose_port,
    listens,
    port_taken,
    wait_for_own_port,
)

HOST = "127.0.0.1"


@pytest.fixture
def occupied() -> Iterator[int]:
    """A port another process's server holds (this test's own socket stands for it)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_taken_port_is_replaced_by_a_free_one_and_a_free_one_kept(occupied: int) -> None:
    assert port_taken(HOST, occupied)
    chosen = choose_port(HOST, occupied)
    assert chosen != occupied and not port_taken(HOST, chosen)
    assert choose_port(HOST, chosen) == chosen


def test_a_port_is_a_process_s_own_only_when_that_process_listens_on_it(occupied: int) -> None:
    assert listens(os.getpid(), occupied) is True
    assert listens(os.getpid(), choose_port(HOST, occupied)) is False
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert listens(child.pid, occupied) is False, "the port answers, but not from the child"
    finally:
        child.kill()
        child.wait()


def test_the_demo_does_not_take_another_process_s_server_for_its_worker(occupied: int) -> None:
    """A worker that cannot bind the port (here: a process that never listens) is not mistaken
    for the server that holds it: the wait fails instead of showing that server's values."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(DevServerUnavailable, match="does not listen"):
            wait_for_own_port(HOST, occupied, 0.5, child)
    finally:
        child.kill()
        child.wait()


def test_the_wait_ends_once_the_process_itself_listens() -> None:
    port = choose_port(HOST, 1)  # a free port (1 is privileged and taken for us)
    code = (
        "import socket, time; s = socket.socket(); "
        f"s.bind(('{HOST}', {port})); s.listen(); time.sleep(30)"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        wait_for_own_port(HOST, port, 10, child)
        assert listens(child.pid, port) is True
    finally:
        child.kill()
        child.wait()
