"""Real Prometheus and Alertmanager (Debian's packages) and a webhook receiver, each on free
loopback ports, for the end-to-end monitoring tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from stream.tools.devservers import free_port, wait_for_port
from tests.servers import _stop, wait_until


def _binary(*names: str) -> str:
    for name in names:
        if path := shutil.which(name):
            return path
    raise AssertionError(f"{names[0]} is missing: make setup installs Debian's packages")


def _start(command: list[str], log: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        command, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_for_port("127.0.0.1", port, 30, process)
    except Exception:
        _stop(process)
        raise AssertionError(f"{command[0]} did not start:\n{log.read_text()}") from None
    return process


class Webhook:
    """An Alertmanager webhook receiver: keeps every notification's alerts."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self, name: str, status: str) -> list[dict[str, Any]]:
        return [
            alert
            for n in list(self.notifications)
            for alert in n["alerts"]
            if alert["labels"]["alertname"] == name and alert["status"] == status
        ]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Alertmanager:
    def __init__(self, workdir: Path, webhook_url: str) -> None:
        self.port = free_port()
        config = workdir / "alertmanager.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "route": {
                        "receiver": "test",
                        "group_by": ["alertname"],
                        "group_wait": "1s",
                        "group_interval": "1s",
                        "repeat_interval": "1h",
                    },
                    "receivers": [
                        {
                            "name": "test",
                            "webhook_configs": [{"url": webhook_url, "send_resolved": True}],
                        }
                    ],
                }
            )
        )
        (workdir / "alertmanager").mkdir()
        self.process = _start(
            [
                _binary("prometheus-alertmanager", "alertmanager"),
                f"--config.file={config}",
                f"--storage.path={workdir / 'alertmanager'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            workdir / "alertmanager.log",
            self.port,
        )

    def stop(self) -> None:
        _stop(self.process)


class Prometheus:
    """Scrapes the given workers every second and evaluates the rules every second; `scrape`
    adds to the job's scrape config (e.g. scheme, tls_config, basic_auth)."""

    def __init__(
        self,
        workdir: Path,
        targets: list[str],
        rules: Path | None,
        alertmanager_port: int | None = None,
        scrape: dict[str, Any] | None = None,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(rules)] if rules is not None else [],
                    "alerting": {
                        "alertmanagers": [
                            {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}
                        ]
                        if alertmanager_port
                        else []
                    },
                    "scrape_configs": [
                        {
                            "job_name": "cxkpi",
                            "static_configs": [{"targets": targets}],
                            **(scrape or {}),
                        }
                    ],
                }
            )
        )
        self.process = _start(
            [
                _binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'prometheus'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--rules.alert.resend-delay=1s",
            ],
            workdir / "prometheus.log",
            self.port,
        )
        wait_until(self._ready, 30, "Prometheus to be ready")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of expr now (an error fails the test)."""
        return self.api("query", query=expr)["result"]

    def values(self, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
        """expr's series now as {sorted labels without __name__: value}."""
        return {
            tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): float(
                r["value"][1]
            )
            for r in self.query(expr)
        }

    def evaluations(self, group: str) -> str | None:
        """The last evaluation time of a rule group (it changes once per evaluation)."""
        for g in self.api("rules")["groups"]:
            if g["name"] == group:
                return g["lastEvaluation"]
        return None

    def stop(self) -> None:
        _stop(self.process)
