"""The worker process around the Faust app: start-up before the broker answers, a stop that is
quick in every state, and output fit for a log file.

Start-up: container platforms start the worker and the broker together, so the worker waits for
the broker rather than exiting. Meanwhile it answers /health (200) and /ready (503, with the
reason), and logs the wait every LOG_EVERY_S.

Stop: on SIGTERM or SIGINT the worker flushes its state once more, for at most FINAL_FLUSH_S, and
says in one line what could not be flushed. With the broker away, the Kafka clients cannot close
(they retry for minutes), so the process exits right after that line; otherwise Faust stops as
usual, within STOP_DEADLINE_S. Nothing is left inconsistent: what was not committed to the
changelog was not acknowledged either, so the next owner of a partition applies it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
from aiohttp import web

from stream.config import ConfigError
from stream.config.settings import Settings
from stream.runtime.topics import BrokerUnreachable, ensure_topics

log = logging.getLogger(__name__)

LOG_EVERY_S = 30.0  # how often the wait for the broker is logged
RETRY_S = 2.0  # between attempts to reach the broker
FINAL_FLUSH_S = 3.0  # the last flush on stop, at most
STOP_DEADLINE_S = 8.0  # from the signal to the end of the process, at most

#: The last flush on stop: True when the process should exit right after it (broker away).
FinalFlush = Callable[[float], Awaitable[bool]]
#: An aiohttp middleware (the basic auth of stream/publish/auth.py, a layer above).
Middleware = Callable[[web.Request, Any], Awaitable[web.StreamResponse]]


async def wait_for_broker(
    settings: Settings,
    give_up_after_s: float | None,
    ssl_context: ssl.SSLContext | None = None,
    middlewares: Sequence[Middleware] = (),
) -> bool:
    """Create the topics as soon as the broker answers. Returns False when stopped by a signal
    meanwhile; raises ConfigError after give_up_after_s, or for a mistake (partition count).
    Meanwhile /health and /ready answer on the worker's port, secured as Faust's server will
    be (`ssl_context`, `middlewares`)."""
    started = time.monotonic()
    reason = f"waiting for the broker at {settings.broker}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await _serve_not_ready(
        settings, lambda: f"{reason} ({_since(started)})", ssl_context, middlewares
    )
    logged = -LOG_EVERY_S
    try:
        while not stop.is_set():
            try:
                await ensure_topics(settings, timeout_s=10.0)
            except BrokerUnreachable as exc:
                waited = time.monotonic() - started
                if give_up_after_s is not None and waited >= give_up_after_s:
                    raise ConfigError(f"{exc} (gave up after {_since(started)})") from None
                if waited - logged >= LOG_EVERY_S:
                    logged = waited
                    log.warning("%s; not ready, retrying (%s so far)", exc, _since(started))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RETRY_S)
                continue
            if logged >= 0:  # the wait was logged: so is its end
                log.info("broker reachable after %s; starting", _since(started))
            return True
        log.info("stopped while waiting for the broker")
        return False
    finally:
        await server.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def _since(started: float) -> str:
    return f"{time.monotonic() - started:.0f} s"


async def _serve_not_ready(
    settings: Settings,
    reason: Callable[[], str],
    ssl_context: ssl.SSLContext | None,
    middlewares: Sequence[Middleware],
) -> web.AppRunner:
    """/health and /ready on the worker's port until the Faust app takes it over."""

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"ready": False, "reason": reason()}, status=503)

    app = web.Application(middlewares=middlewares)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(
            runner, settings.web_host, settings.web_port, ssl_context=ssl_context
        ).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"cannot serve HTTP on {settings.web_host}:{settings.web_port} ({exc.strerror}); "
            "choose another --web-port / CXKPI_WEB_PORT"
        ) from None
    return runner


class KpiWorker(faust.Worker):
    """Faust's worker with a bounded stop (see the module docstring) and, when its output is not
    a terminal or logs are JSON, no spinner, banner or terminal escape sequences."""

    def __init__(
        self, app: faust.App, *, final_flush: FinalFlush, log_level: str, plain: bool
    ) -> None:
        super().__init__(
            app,
            loglevel=log_level.upper(),
            redirect_stdouts=False,
            override_logging=False,
            quiet=plain,
        )
        if plain:
            self.spinner = None
        self.final_flush = final_flush

    def _schedule_shutdown(self, sig: signal.Signals) -> None:
        if not self._signal_stop_time:
            _exit_after(STOP_DEADLINE_S)
        super()._schedule_shutdown(sig)

    async def _stop_on_signal(self, sig: signal.Signals) -> None:
        log.info("%s received: stopping", sig.name)
        if await self.final_flush(FINAL_FLUSH_S):
            _exit_now("the broker is unreachable: not waiting for the Kafka clients to close")
        await super()._stop_on_signal(sig)


def _exit_after(seconds: float) -> None:
    """A watchdog: whatever Faust waits on, the process ends `seconds` from now."""
    timer = threading.Timer(seconds, _exit_now, (f"still stopping after {seconds:.0f} s",))
    timer.daemon = True
    timer.start()


def _exit_now(why: str) -> None:
    log.warning("exiting now: %s", why)
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)


def quiet_cancelled_threads() -> None:
    """Faust's consumer thread ends with a CancelledError when its loop is cancelled at stop;
    that is the stop working, not a crash: one line, no traceback."""
    default = threading.excepthook

    def hook(args: Any) -> None:
        if args.exc_type is asyncio.CancelledError:
            log.info("thread %s cancelled at stop", args.thread.name if args.thread else "?")
        else:
            default(args)

    threading.excepthook = hook
