"""Basic auth: bcrypt checks off the event loop, successes remembered and failures never, and the
middleware on a real aiohttp server (401 with a challenge, the probe paths open when told)."""

from __future__ import annotations

import asyncio
import base64
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from stream.config.settings import Settings
from stream.config.webconfig import WebConfig
from stream.publish.auth import (
    PROBE_PATHS,
    PasswordCheck,
    basic_auth,
    credentials,
    web_security,
)

#: cost 4: the format's lowest, so that the tests spend no time hashing
USERS = {
    "prometheus": bcrypt.hashpw(b"scrape-me", bcrypt.gensalt(4)),
    "grafana": bcrypt.hashpw(b"other-password", bcrypt.gensalt(4)),
}


def run(coroutine: Awaitable[Any]) -> Any:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_success_is_remembered_and_costs_no_second_bcrypt() -> None:
    check = PasswordCheck(USERS)

    async def twice() -> list[bool]:
        return [await check.check("prometheus", "scrape-me") for _ in range(2)]

    assert run(twice()) == [True, True]
    assert check.bcrypt_checks == 1
    assert check.remembered("prometheus", "scrape-me")


def test_failures_are_never_remembered_nor_turned_into_successes() -> None:
    check = PasswordCheck(USERS)

    async def scenario() -> list[bool]:
        return [
            await check.check("prometheus", "wrong"),
            await check.check("prometheus", "wrong"),
            await check.check("prometheus", "scrape-me"),  # the right one still passes
            await check.check("prometheus", "wrong"),  # and a remembered success lets no other in
            await check.check("prometheus", "scrape-me "),
            await check.check("grafana", "scrape-me"),  # another user's remembered password
            # an unknown user is checked against a configured hash (here the one of this very
            # password) for the time it takes, and refused whatever it says
            await check.check("nobody", "scrape-me"),
        ]

    assert run(scenario()) == [False, False, True, False, False, False, False]
    # every check but the second right one ran bcrypt: the unknown user against the decoy hash
    assert check.bcrypt_checks == 7
    assert not check.remembered("prometheus", "wrong")
    assert not check.remembered("grafana", "scrape-me")
    assert not check.remembered("nobody", "scrape-me")
    assert run(PasswordCheck({}).check("nobody", "")) is False


def test_an_htpasswd_hash_and_an_overlong_password_are_handled() -> None:
    htpasswd = b"$2y$" + USERS["prometheus"][4:]  # htpasswd -B writes $2y$
    check = PasswordCheck({"prometheus": htpasswd})
    assert run(check.check("prometheus", "scrape-me")) is True
    # bcrypt refuses passwords over 72 bytes: a failure, not an error
    assert run(check.check("prometheus", "x" * 100)) is False


def test_the_bcrypt_check_runs_off_the_event_loop() -> None:
    slow = {"u": bcrypt.hashpw(b"pw", bcrypt.gensalt(12))}  # about 250 ms
    check = PasswordCheck(slow)

    async def scenario() -> tuple[bool, bool]:
        task = asyncio.create_task(check.check("u", "pw"))
        await asyncio.sleep(0.001)  # the task runs up to its first wait
        # had bcrypt run on the loop, the task would have finished before the loop came back
        running = not task.done()
        return running, await task

    assert run(scenario()) == (True, True)


def test_a_remembered_check_costs_far_less_than_bcrypt_at_cost_10() -> None:
    """The figures of docs/operations.md: an uncached check at cost 10, a remembered one."""
    check = PasswordCheck({"u": bcrypt.hashpw(b"pw", bcrypt.gensalt(10))})

    async def timed() -> tuple[float, float]:
        started = time.perf_counter()
        assert await check.check("u", "pw")
        uncached = time.perf_counter() - started
        times = []
        for _ in range(1000):
            started = time.perf_counter()
            assert await check.check("u", "pw")
            times.append(time.perf_counter() - started)
        return uncached, statistics.median(times)

    uncached, cached = run(timed())
    print(f"\nbasic auth check at bcrypt cost 10: {uncached * 1e3:.1f} ms uncached, "
          f"{cached * 1e6:.1f} µs remembered (median of 1000)")  # fmt: skip
    assert check.bcrypt_checks == 1
    assert cached * 100 < uncached


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (header("prometheus", "a:b"), ("prometheus", "a:b")),  # a password may hold ':'
        ("basic " + base64.b64encode(b"u:p").decode(), ("u", "p")),
        (header("j\u00f6rg", "p\u00e4ss"), ("j\u00f6rg", "p\u00e4ss")),  # UTF-8
        (None, None),
        ("", None),
        ("Bearer abc", None),
        ("Basic !!!", None),
        ("Basic " + base64.b64encode(b"no-colon").decode(), None),
        ("Basic " + base64.b64encode(b"\xff:\xfe").decode(), None),
    ],
)
def test_credentials_of_a_header(value: str | None, expected: tuple[str, str] | None) -> None:
    assert credentials(value) == expected


Requester = Callable[..., Awaitable[tuple[int, dict[str, str]]]]


async def ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def serve(open_paths: frozenset[str], scenario: Callable[[Requester], Awaitable[None]]) -> None:
    """Run scenario against a real aiohttp server on the loopback with the middleware."""

    async def main() -> None:
        app = web.Application(middlewares=[basic_auth(PasswordCheck(USERS), open_paths)])
        for path in ("/metrics", "/health", "/ready", "/health/", "/healthz"):
            app.router.add_get(path, ok)
        async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as s:

            async def get(path: str, auth: str | None = None) -> tuple[int, dict[str, str]]:
                headers = {"Authorization": auth} if auth is not None else {}
                async with s.get(server.make_url(path), headers=headers) as response:
                    return response.status, dict(response.headers)

            await scenario(get)

    asyncio.run(main())


def test_the_middleware_answers_401_with_a_challenge_unless_the_credentials_pass() -> None:
    async def scenario(get: Requester) -> None:
        status, headers = await get("/metrics")
        assert status == 401
        assert headers["WWW-Authenticate"] == 'Basic realm="cxkpi", charset="UTF-8"'
        assert (await get("/metrics", header("prometheus", "wrong")))[0] == 401
        assert (await get("/metrics", header("nobody", "scrape-me")))[0] == 401
        assert (await get("/metrics", "Basic !!!"))[0] == 401
        assert (await get("/metrics", header("prometheus", "scrape-me")))[0] == 200
        assert (await get("/metrics", header("prometheus", "scrape-me")))[0] == 200
        # exactly the probe paths are open, nothing that merely resembles them
        for path in ("/health", "/ready"):
            assert (await get(path))[0] == 200, path
        for path in ("/health/", "/healthz"):
            assert (await get(path))[0] == 401, path

    serve(PROBE_PATHS, scenario)


def test_with_the_probes_closed_every_path_needs_credentials() -> None:
    async def scenario(get: Requester) -> None:
        for path in ("/health", "/ready", "/metrics"):
            assert (await get(path))[0] == 401, path
            assert (await get(path, header("grafana", "other-password")))[0] == 200, path

    serve(frozenset(), scenario)


def test_web_security_follows_the_file_and_the_probes_setting(tmp_path: Path) -> None:
    settings = Settings.load({"config": "none"}, environ={})
    assert web_security(settings, None) is None
    users_only = WebConfig(tmp_path / "web.yml", None, USERS)
    security = web_security(settings, users_only)
    assert security is not None and security.ssl_context is None
    assert len(security.middlewares) == 1
    closed = Settings.load({"config": "none", "web_probes_open": "false"}, environ={})

    async def health_status(settings: Settings) -> int:
        security = web_security(settings, users_only)
        assert security is not None
        app = web.Application(middlewares=security.middlewares)
        app.router.add_get("/health", ok)
        async with (
            TestServer(app, host="127.0.0.1") as server,
            aiohttp.ClientSession() as s,
            s.get(server.make_url("/health")) as response,
        ):
            return response.status

    assert run(health_status(settings)) == 200
    assert run(health_status(closed)) == 401
