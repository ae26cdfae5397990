"""HTTP endpoints on the worker's web port: /metrics, /kpis, /health, /ready."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.web import Request, Response, View

#: The Prometheus text format (aiohttp wants the charset apart from the content type).
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4"


def add_routes(
    app: faust.App,
    metrics_text: Callable[[], Awaitable[bytes]],
    snapshot: Callable[[], Awaitable[dict[str, Any]]],
    readiness: Callable[[], tuple[bool, str]],
) -> None:
    """Register the endpoints on the Faust web server."""

    @app.page("/metrics")
    async def metrics(web: View, request: Request) -> Response:
        response = web.bytes(await metrics_text(), content_type=METRICS_CONTENT_TYPE)
        response.charset = "utf-8"
        return response

    @app.page("/kpis")
    async def kpis(web: View, request: Request) -> Response:
        return web.json(await snapshot())

    @app.page("/health")
    async def health(web: View, request: Request) -> Response:
        return web.json({"status": "ok"})

    @app.page("/ready")
    async def ready(web: View, request: Request) -> Response:
        ok, reason = readiness()
        return web.json({"ready": ok, "reason": reason}, status=200 if ok else 503)
