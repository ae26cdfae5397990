"""The secured HTTP port end to end: a worker started with --web-config (TLS, client certificates
required and verified, basic auth), scraped by a real Prometheus over HTTPS with a client
certificate and a password, and storing its snapshot in a redis-server over TLS with a password.
One worker serves every assertion; a bad web config stops `cxkpi worker` with one line."""

from __future__ import annotations

import base64
import http.client
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import orjson
import pytest
import redis
import yaml

from stream.tools.devservers import free_port, wait_for_port
from tests.certificates import Pki, make_pki
from tests.monitoring_servers import Prometheus
from tests.servers import Broker, Worker, _stop, cxkpi, wait_until, without_broker

pytestmark = pytest.mark.integration

USER, PASSWORD = "prometheus", "correct horse battery staple"
REDIS_PASSWORD = "redis-secret-of-the-test"
EVENTS = 400
#: the source topics' records (the customers topic counts the orders forwarded to it as well)
SOURCES = 'job="cxkpi", topic=~"cart-events|tickets|survey-replies|activity"'


@dataclass
class Answer:
    """What a client got: an HTTP status and body, or the error that stopped it before any."""

    status: int | None
    body: bytes = b""
    error: str = ""


@dataclass
class Client:
    """HTTPS requests to the worker's port as a scraper would make them (or fail to)."""

    port: int
    pki: Pki

    def context(self, certificate: bool) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.pki.ca)
        if certificate:
            context.load_cert_chain(self.pki.client_cert, self.pki.client_key)
        return context

    def get(
        self,
        path: str,
        auth: tuple[str, str] | None = (USER, PASSWORD),
        certificate: bool = True,
        scheme: str = "https",
    ) -> Answer:
        request = urllib.request.Request(f"{scheme}://127.0.0.1:{self.port}{path}")
        if auth is not None:
            token = base64.b64encode(":".join(auth).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        context = self.context(certificate) if scheme == "https" else None
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as response:
                return Answer(response.status, response.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.read())
        except (OSError, http.client.HTTPException) as error:
            cause = getattr(error, "reason", error)
            return Answer(None, error=f"{type(cause).__name__}: {cause}")


class TlsRedis:
    """redis-server serving only TLS (no plain port), with a password."""

    def __init__(self, workdir: Path, pki: Pki) -> None:
        self.port = free_port()
        self.url = (
            f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{self.port}/0?ssl_ca_certs={pki.ca}"
            "&ssl_cert_reqs=required"
        )
        self.process = subprocess.Popen(
            [
                "redis-server",
                *("--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1"),
                *("--tls-cert-file", str(pki.server_cert), "--tls-key-file", str(pki.server_key)),
                *("--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "no"),
                *("--requirepass", REDIS_PASSWORD, "--save", "", "--appendonly", "no"),
                *("--dir", str(workdir)),
            ],
            stdout=(workdir / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port("127.0.0.1", self.port, 10, self.process)

    def stop(self) -> None:
        _stop(self.process)


def web_config(folder: Path, pki: Pki, **tls: str) -> Path:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    path = folder / "web.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {
                    "cert_file": str(pki.server_cert),
                    "key_file": str(pki.server_key),
                    "client_auth_type": "RequireAndVerifyClientCert",
                    "client_ca_file": str(pki.ca),
                    **tls,
                },
                "basic_auth_users": {USER: "$2y$" + hashed[4:]},  # as htpasswd -B writes it
            }
        )
    )
    return path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def tls_redis(tmp_path: Path, pki: Pki) -> Iterator[TlsRedis]:
    server = TlsRedis(tmp_path, pki)
    yield server
    server.stop()


def test_prometheus_scrapes_a_worker_over_tls_with_client_certificates_and_basic_auth(
    broker: Broker, tls_redis: TlsRedis, pki: Pki, tmp_path: Path
) -> None:
    env = {
        "CXKPI_BROKER": broker.url,
        "CXKPI_REDIS_URL": tls_redis.url,
        "CXKPI_PROFILE": "dev",
        "CXKPI_APP_ID": "cxkpi-secured",
        "CXKPI_PARTITIONS": "2",
        "CXKPI_IDLE_TIMEOUT": "1d",
        "CXKPI_FLUSH_INTERVAL": "0.5s",
        "CXKPI_PUBLISH_INTERVAL": "0.5s",
        "CXKPI_WEB_CONFIG": str(web_config(tmp_path, pki)),
    }
    events = tmp_path / "events.jsonl"
    cxkpi(
        "generate", "--count", str(EVENTS), "--seed", "5", "--out", str(events), "--quiet", env=env
    )
    worker = Worker(env, tmp_path / "worker.log")
    client = Client(int(worker.env["CXKPI_WEB_PORT"]), pki)
    prometheus = None
    try:

        def ready() -> bool:
            assert worker.process.poll() is None, (tmp_path / "worker.log").read_text()
            return client.get("/ready", auth=None).status == 200  # the probes are open

        wait_until(ready, 90, "the worker to be ready over TLS")
        cxkpi("produce", str(events), "--quiet", env=env)
        prometheus = Prometheus(
            tmp_path,
            [f"127.0.0.1:{client.port}"],
            rules=None,
            scrape={
                "scheme": "https",
                "tls_config": {
                    "ca_file": str(pki.ca),
                    "cert_file": str(pki.client_cert),
                    "key_file": str(pki.client_key),
                },
                "basic_auth": {"username": USER, "password": PASSWORD},
            },
        )

        def scraped() -> float | None:
            values = prometheus.values(f"sum(cxkpi_events_total{{{SOURCES}}})")
            up = prometheus.values('up{job="cxkpi"}')
            return next(iter(values.values()), None) if list(up.values()) == [1.0] else None

        wait_until(lambda: scraped() == EVENTS, 60, f"Prometheus to count {EVENTS} events")
        # the worker itself: the right credentials and certificate, and each thing missing
        metrics = client.get("/metrics")
        assert metrics.status == 200 and b"cxkpi_events_total" in metrics.body
        assert client.get("/metrics", auth=(USER, "wrong password")).status == 401
        assert client.get("/metrics", auth=("nobody", PASSWORD)).status == 401
        unauthenticated = client.get("/kpis", auth=None)
        assert unauthenticated.status == 401 and unauthenticated.body == b"401: Unauthorized"
        assert client.get("/health", auth=None).status == 200
        for faust_page in ("/", "/router/"):  # Faust's own pages are behind the auth too
            assert client.get(faust_page, auth=None).status == 401, faust_page
        plain = client.get("/metrics", scheme="http")
        assert plain.status is None and plain.error, f"plain HTTP answered: {plain}"
        no_certificate = client.get("/metrics", certificate=False)
        assert no_certificate.status is None, (
            f"answered without a client certificate: {no_certificate}"
        )
        print(f"plain HTTP: {plain.error}; no client certificate: {no_certificate.error}")

        # the snapshot went to Redis over TLS with the password
        assert orjson.loads(client.get("/kpis").body)["snapshot_store"] == "up"
        store = redis.Redis.from_url(tls_redis.url)
        snapshot = wait_until(lambda: store.get("cxkpi-secured:snapshot"), 30, "the snapshot")
        counts = orjson.loads(snapshot)["events"]
        sources = ("cart-events", "tickets", "survey-replies", "activity")
        assert sum(sum(counts[topic].values()) for topic in sources) == EVENTS
        store.close()
    finally:
        if prometheus is not None:
            prometheus.stop()
        worker.stop()
    log = (tmp_path / "worker.log").read_text()
    assert PASSWORD not in log and REDIS_PASSWORD not in log
    assert "web config" in log and "RequireAndVerifyClientCert" in log


def test_the_port_is_secured_while_the_worker_waits_for_the_broker(
    pki: Pki, tmp_path: Path
) -> None:
    env = {**without_broker(), "CXKPI_WEB_CONFIG": str(web_config(tmp_path, pki))}
    worker = Worker(env, tmp_path / "worker.log")
    client = Client(int(worker.env["CXKPI_WEB_PORT"]), pki)
    try:
        answer: dict[str, Any] = {}

        def waiting() -> bool:
            assert worker.process.poll() is None, (tmp_path / "worker.log").read_text()
            got = client.get("/ready", auth=None)
            answer["ready"] = got
            return got.status == 503

        wait_until(waiting, 60, "/ready to say the worker waits for the broker")
        assert b"waiting for the broker" in answer["ready"].body
        assert client.get("/health", auth=(USER, "wrong")).status == 200  # open: no check
        assert client.get("/metrics", auth=None).status == 401
        assert client.get("/metrics", auth=(USER, PASSWORD)).status == 404  # not yet served
        assert client.get("/ready", scheme="http").status is None
        assert client.get("/ready", certificate=False).status is None
    finally:
        worker.stop()


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        ("hash", "basic_auth_users.prometheus: not a bcrypt hash"),
        ("cert", "tls_server_config.cert_file: no such file: "),
    ],
)
def test_a_bad_web_config_stops_the_worker_with_one_line(
    pki: Pki, tmp_path: Path, problem: str, expected: str
) -> None:
    path = web_config(tmp_path, pki)
    doc = yaml.safe_load(path.read_text())
    if problem == "hash":
        doc["basic_auth_users"][USER] = PASSWORD  # a password where its hash belongs
    else:
        doc["tls_server_config"]["cert_file"] = str(tmp_path / "missing.pem")
    path.write_text(yaml.safe_dump(doc))
    started = time.monotonic()
    result = cxkpi(
        "worker",
        "--web-config",
        str(path),
        env=without_broker(),
        check=False,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()  # one line, no traceback
    assert line.startswith(f"cxkpi worker: error: {path}: ")
    assert expected in result.stderr and PASSWORD not in result.stderr
    assert time.monotonic() - started < 30
