"""The secret of the pseudonymous customer keys, or why customer KPIs cannot start.

Every worker of a fleet must use the same secret, across restarts: a customer's key is what
brings their orders together, so another secret splits a customer in two. In production the
secret is a setting (`CXKPI_CUSTOMER_KEY_SECRET`) and nothing is guessed. Only `--profile dev`
generates one: random, stored once under `data_dir/app_id`, where every dev worker of the fleet
(all on one machine, same data_dir and app id) and every restart finds it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from stream.config import ConfigError
from stream.config.options import MIN_SECRET_BYTES
from stream.config.settings import Settings

DEV_SECRET_FILE = "customer-key.secret"


def customer_secret(settings: Settings) -> bytes:
    """The customer key secret: the setting, else the dev fleet's own in `--profile dev`, else
    a ConfigError that says what to set."""
    if settings.customer_key_secret:
        return settings.customer_key_secret.encode()
    if settings.profile == "dev":
        return _dev_secret(Path(settings.data_dir) / settings.app_id / DEV_SECRET_FILE)
    raise ConfigError(
        "customer and engagement KPIs need customer_key_secret: set CXKPI_CUSTOMER_KEY_SECRET "
        f"to at least {MIN_SECRET_BYTES} random bytes (e.g. `openssl rand -base64 32`), the "
        "same for every worker and kept across restarts; only --profile dev generates one"
    )


def _dev_secret(path: Path) -> bytes:
    """The secret stored at `path`, created once. Workers starting together race for it: each
    writes a complete candidate and links it into place, and whoever comes second reads the
    winner's, so nobody ever reads a half-written file."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_bytes(32))
    try:
        os.link(candidate, path)
    except FileExistsError:
        pass  # another worker was first: its secret is the fleet's
    finally:
        candidate.unlink()
    return path.read_bytes()
