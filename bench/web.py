"""`python -m bench.web`: what --web-config costs a scrape.

Starts the embedded broker and two workers over the same generated events, one in plain HTTP and
one with TLS, client certificates required and basic auth (a bcrypt hash of cost 10), and times
GET /metrics on each: over one kept-alive connection (as Prometheus scrapes) and with a new
connection per request (a TLS handshake each time). Also times a basic auth check in-process,
uncached and remembered. docs/operations.md ("Securing the endpoints") quotes its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import ssl
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import bcrypt
import yaml

from stream.publish.auth import PasswordCheck
from stream.tools.children import interrupt_on_sigterm
from tests.certificates import Pki, make_pki
from tests.servers import Broker, Worker, cxkpi, wait_until

PASSWORD = "bench-password"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"bench:{PASSWORD}".encode()).decode()}


def web_config(folder: Path, pki: Pki) -> Path:
    path = folder / "web.yml"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    tls = {
        "cert_file": str(pki.server_cert),
        "key_file": str(pki.server_key),
        "client_auth_type": "RequireAndVerifyClientCert",
        "client_ca_file": str(pki.ca),
    }
    path.write_text(
        yaml.safe_dump({"tls_server_config": tls, "basic_auth_users": {"bench": hashed}})
    )
    return path


def auth_check() -> tuple[float, float]:
    """Seconds of one uncached check at cost 10, and the median of 1,000 remembered ones."""
    check = PasswordCheck({"bench": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10))})

    async def run() -> tuple[float, float]:
        started = time.perf_counter()
        assert await check.check("bench", PASSWORD)
        uncached = time.perf_counter() - started
        times = []
        for _ in range(1000):
            started = time.perf_counter()
            assert await check.check("bench", PASSWORD)
            times.append(time.perf_counter() - started)
        return uncached, statistics.median(times)

    return asyncio.run(run())


def time_scrapes(
    connect: Callable[[], http.client.HTTPConnection], headers: dict[str, str], requests: int
) -> tuple[float, float, float, int]:
    """Median and p90 over one kept-alive connection, median with a new connection each time,
    and the body's size."""

    def get(connection: http.client.HTTPConnection) -> bytes:
        connection.request("GET", "/metrics", headers=headers)
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200, response.status
        return body

    kept = connect()
    for _ in range(20):  # warm up: the windowed text is rendered once, then reused
        size = len(get(kept))
    same, fresh = [], []
    for _ in range(requests):
        started = time.perf_counter()
        get(kept)
        same.append(time.perf_counter() - started)
    for _ in range(requests // 2):
        started = time.perf_counter()
        connection = connect()
        get(connection)
        connection.close()
        fresh.append(time.perf_counter() - started)
    kept.close()
    return (
        statistics.median(same),
        statistics.quantiles(same, n=10)[-1],
        statistics.median(fresh),
        size,
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__)
    parser.add_argument(
        "--events", type=int, default=2000, help="events produced first (default 2000)"
    )
    parser.add_argument(
        "--requests", type=int, default=200, help="timed requests per worker (default 200)"
    )
    args = parser.parse_args()
    interrupt_on_sigterm()  # the broker and workers it starts stop with it
    uncached, remembered = auth_check()
    print(f"basic auth check, bcrypt cost 10: {uncached * 1e3:.1f} ms uncached, "
          f"{remembered * 1e6:.1f} µs remembered")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="cxkpi-bench-web-") as folder:
        work = Path(folder)
        pki = make_pki(work / "pki")
        broker = Broker(work)
        base = {
            "CXKPI_BROKER": broker.url,
            "CXKPI_REDIS_URL": "none",
            "CXKPI_PROFILE": "dev",
            "CXKPI_PARTITIONS": "2",
            "CXKPI_IDLE_TIMEOUT": "1d",
        }
        events = work / "events.jsonl"
        cxkpi("generate", "--count", str(args.events), "--seed", "5", "--out", str(events),
              "--quiet", env=base)  # fmt: skip
        client = ssl.create_default_context(cafile=pki.ca)
        client.load_cert_chain(pki.client_cert, pki.client_key)
        try:
            for name, secured in (("plain HTTP", False), ("TLS + client cert + basic auth", True)):
                env = {**base, "CXKPI_APP_ID": f"bench-web-{int(secured)}"}
                if secured:
                    env["CXKPI_WEB_CONFIG"] = str(web_config(work, pki))
                median, p90, fresh, size = measure(
                    Worker(env, work / f"worker-{int(secured)}.log"),
                    client if secured else None,
                    events,
                    args,
                )
                print(
                    f"{name}: /metrics ({size / 1000:.0f} KB) kept-alive median "
                    f"{median * 1e3:.2f} ms, p90 {p90 * 1e3:.2f} ms; new connection each "
                    f"{fresh * 1e3:.2f} ms"
                )
        finally:
            broker.stop()


def measure(
    worker: Worker, client: ssl.SSLContext | None, events: Path, args: argparse.Namespace
) -> tuple[float, float, float, int]:
    """Feed the worker the events, then time its /metrics (over TLS with auth when `client`)."""
    port = int(worker.env["CXKPI_WEB_PORT"])

    def connect() -> http.client.HTTPConnection:
        if client is not None:
            return http.client.HTTPSConnection("127.0.0.1", port, context=client)
        return http.client.HTTPConnection("127.0.0.1", port)

    headers = AUTH if client is not None else {}
    try:
        wait_until(lambda: _answers(connect, headers), 90, "the worker")
        cxkpi("produce", str(events), "--quiet", env=worker.env)
        wait_until(lambda: _counted(connect, headers) >= args.events, 60, "the events")
        return time_scrapes(connect, headers, args.requests)
    finally:
        worker.stop()


def _answers(connect: Callable[[], http.client.HTTPConnection], headers: dict[str, str]) -> bool:
    try:
        connection = connect()
        connection.request("GET", "/ready", headers=headers)
        ready = connection.getresponse().status == 200
        connection.close()
        return ready
    except OSError:
        return False


def _counted(connect: Callable[[], http.client.HTTPConnection], headers: dict[str, str]) -> float:
    """Records with an outcome, from /metrics."""
    connection = connect()
    connection.request("GET", "/metrics", headers=headers)
    text = connection.getresponse().read().decode()
    connection.close()
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("cxkpi_events_total")
    )


if __name__ == "__main__":
    main()
