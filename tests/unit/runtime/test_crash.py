"""The crash test hook: armed only by CXKPI_CRASH_AT, it kills the process the n-th time its
point is reached, and a wrong value stops the worker at start."""

from __future__ import annotations

import signal

import pytest

from stream.config import ConfigError
from stream.runtime import crash
from stream.runtime.checkpoint import POINTS
from stream.runtime.crash import crash_at


def test_unset_it_is_not_armed() -> None:
    assert crash_at(POINTS, {}) is None
    assert crash_at(POINTS, {"CXKPI_CRASH_AT": ""}) is None


@pytest.mark.parametrize("spec", ["markers-sent", "markers-sent:0", "nowhere:3", "restored:x"])
def test_a_wrong_value_is_refused(spec: str) -> None:
    with pytest.raises(ConfigError, match="invalid CXKPI_CRASH_AT"):
        crash_at(POINTS, {"CXKPI_CRASH_AT": spec})


def test_it_kills_this_process_the_nth_time_its_point_is_reached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kills: list[tuple[int, int]] = []
    monkeypatch.setattr(crash.os, "kill", lambda pid, sig: kills.append((pid, sig)))
    monkeypatch.setattr(crash.os, "getpid", lambda: 4242)
    hook = crash_at(POINTS, {"CXKPI_CRASH_AT": "markers-sent:2"})
    assert hook is not None
    hook.reached("records-sent", "tickets")
    hook.reached("markers-sent", "tickets")
    assert kills == []
    hook.reached("markers-sent", "cart-events")
    assert kills == [(4242, signal.SIGKILL)]


def test_it_is_not_a_setting() -> None:
    """Nowhere in the options (so not in --help, the environment table or cxkpi.toml)."""
    from stream.config.options import OPTIONS

    assert all(option.env != crash.ENV for option in OPTIONS)
