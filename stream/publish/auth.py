"""Basic auth on the worker's HTTP port, from the web config's `basic_auth_users`.

A bcrypt check costs about 70 ms at cost 10, and Prometheus sends the same credentials at every
scrape. So a check runs off the event loop, and a successful one is remembered: the next request
with the same user and password costs an HMAC and a constant-time comparison, and a scrape costs
no more than without auth. Only successes are remembered, so no failure can ever be served from
the cache as a success.

The bcrypt checks run one at a time on a thread of their own: bcrypt releases the GIL, and a
flood of wrong passwords would otherwise take every core from the stream processing (the exporter
toolkit serialises them too). Requests with remembered credentials never wait behind them.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import ssl
from collections.abc import Awaitable, Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from hashlib import sha256

import bcrypt
from aiohttp import BasicAuth, hdrs, web

from stream.config.settings import Settings
from stream.config.webconfig import WebConfig

#: The paths Kubernetes' probes ask (open without credentials unless web_probes_open is false).
PROBE_PATHS = frozenset({"/health", "/ready"})
#: A 401's challenge: browsers and curl then ask for a user and password.
CHALLENGE = 'Basic realm="cxkpi", charset="UTF-8"'

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


class PasswordCheck:
    """Checks a user and password against bcrypt hashes, remembering successes."""

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        # Remembered successes: user -> HMAC of (user, password) under a key of this process
        # alone, so what stays in memory is not a plain SHA-256 of a password.
        self._key = secrets.token_bytes(32)
        self._passed: dict[str, bytes] = {}
        # An unknown user's password is checked against a configured hash (the costliest) and
        # refused whatever the result, so the answer takes as long as for a known user with a
        # wrong password: no user names by timing.
        self._decoy = max(self._users.values(), key=lambda h: int(h[4:6]), default=None)
        self._executor: ThreadPoolExecutor | None = None
        self.bcrypt_checks = 0  # how many ran (the cache's tests and figures read it)

    def _digest(self, user: str, password: str) -> bytes:
        name = user.encode()
        message = len(name).to_bytes(4, "big") + name + password.encode()
        return hmac.new(self._key, message, sha256).digest()

    def remembered(self, user: str, password: str) -> bool:
        """Whether these exact credentials passed a bcrypt check before."""
        known = self._passed.get(user)
        return known is not None and hmac.compare_digest(known, self._digest(user, password))

    async def check(self, user: str, password: str) -> bool:
        """Whether the password is the user's: from memory when it passed before, else by
        bcrypt on the checking thread."""
        if self.remembered(user, password):
            return True
        hashed = self._users.get(user)
        decoy_or_hash = hashed if hashed is not None else self._decoy
        if decoy_or_hash is None:  # no users at all
            return False
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="cxkpi-bcrypt")
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(self._executor, self._bcrypt, password, decoy_or_hash)
        if ok and hashed is not None:
            self._passed[user] = self._digest(user, password)
        return ok and hashed is not None

    def _bcrypt(self, password: str, hashed: bytes) -> bool:
        self.bcrypt_checks += 1
        try:
            return bcrypt.checkpw(password.encode(), hashed)
        except ValueError:  # over bcrypt's 72 bytes: never a valid password
            return False


def credentials(header: str | None) -> tuple[str, str] | None:
    """User and password of an `Authorization: Basic …` header (UTF-8), or None."""
    if not header:
        return None
    try:
        auth = BasicAuth.decode(header, encoding="utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return auth.login, auth.password


def basic_auth(check: PasswordCheck, open_paths: Collection[str] = ()) -> Middleware:
    """An aiohttp middleware: 401 unless the request's credentials pass `check`; the paths in
    `open_paths` (exactly those) answer without."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in open_paths:
            given = credentials(request.headers.get(hdrs.AUTHORIZATION))
            if given is None or not await check.check(*given):
                raise web.HTTPUnauthorized(headers={hdrs.WWW_AUTHENTICATE: CHALLENGE})
        return await handler(request)

    return middleware


@dataclass(frozen=True)
class WebSecurity:
    """What the HTTP servers take from the web config: the SSL context (None: plain HTTP) and
    the middlewares (the auth, when users are configured)."""

    ssl_context: ssl.SSLContext | None
    middlewares: tuple[Middleware, ...]


def web_security(settings: Settings, config: WebConfig | None) -> WebSecurity | None:
    """The security of the worker's HTTP port, shared by the server that answers while the
    broker is awaited and Faust's (so a success remembered by one serves the other)."""
    if config is None:
        return None
    middlewares: tuple[Middleware, ...] = ()
    if config.users:
        open_paths = PROBE_PATHS if settings.web_probes_open else frozenset()
        middlewares = (basic_auth(PasswordCheck(config.users), open_paths),)
    return WebSecurity(config.ssl_context, middlewares)
