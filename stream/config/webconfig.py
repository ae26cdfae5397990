"""The `--web-config` file: TLS, client certificates and basic auth for the worker's HTTP port.

The file has the format of the Prometheus exporter toolkit's web configuration
(https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md), so the
file an operator already writes for node_exporter, and the scrape config that matches it, serve
here too. It is read and checked once at start: every mistake (an unknown key, a missing file, a
certificate that does not load, a bcrypt hash that is not one) is a ConfigError naming the file
and the key, so the worker stops with one line instead of serving unprotected or failing later.

Keys of the toolkit's format that this server does not implement are refused by name rather than
ignored: a setting silently dropped would be a security setting silently dropped.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stream.config import ConfigError

TOP_KEYS = ("tls_server_config", "basic_auth_users")
TLS_KEYS = (
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
)
#: Keys of the exporter toolkit's format that are not implemented, and why.
UNSUPPORTED = {
    "http_server_config": "HTTP/2 and extra response headers are not implemented",
    "rate_limit": "rate limiting is not implemented",
    "tls_server_config.cert": "give the certificate as cert_file",
    "tls_server_config.key": "give the key as key_file",
    "tls_server_config.client_ca": "give the CA as client_ca_file",
    "tls_server_config.client_allowed_sans": "SAN matching is not implemented",
    "tls_server_config.cipher_suites": "Go's cipher suite names do not apply; OpenSSL's "
    "defaults are used",
    "tls_server_config.curve_preferences": "OpenSSL's defaults are used",
    "tls_server_config.prefer_server_cipher_suites": "OpenSSL's defaults are used",
}
#: client_auth_type -> how the server asks for and checks a client certificate.
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
#: Go's modes that accept a certificate without verifying it: Python's ssl module verifies every
#: client certificate it receives, so they cannot be served as specified (and an unverified
#: certificate proves nothing: the toolkit calls them insecure).
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
#: A bcrypt hash as htpasswd -B and the bcrypt package write it: $2a$, $2b$ or $2y$, a cost of
#: 4 to 31, 22 characters of salt and 31 of hash.
BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}")


@dataclass(frozen=True)
class TlsConfig:
    """tls_server_config, checked, with the server's SSL context built from it."""

    cert_file: Path
    key_file: Path
    client_auth_type: str
    client_ca_file: Path | None
    min_version: str
    max_version: str
    context: ssl.SSLContext = field(repr=False, compare=False)


@dataclass(frozen=True)
class WebConfig:
    """The whole file: TLS (None: plain HTTP) and the basic auth users (empty: no auth)."""

    path: Path
    tls: TlsConfig | None
    users: Mapping[str, bytes] = field(repr=False)  # user -> bcrypt hash

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return self.tls.context if self.tls is not None else None

    def describe(self) -> str:
        """One line for the log at start (no user names, no paths of keys)."""
        if self.tls is None:
            tls = "TLS off (plain HTTP)"
        else:
            tls = (
                f"TLS ({self.tls.min_version} to {self.tls.max_version}), client certificates: "
                f"{self.tls.client_auth_type}"
            )
        auth = f"basic auth for {len(self.users)} user(s)" if self.users else "no basic auth"
        return f"web config {self.path}: {tls}; {auth}"


def load_web_config(path: str | Path) -> WebConfig:
    """Read and check the file; relative paths in it are taken from its own folder (as the
    exporter toolkit does). Raises ConfigError naming the file and the key."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the web config: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (UTF-8)") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or "not YAML"
        raise ConfigError(f"{path}: invalid YAML{line}: {problem}") from None
    if doc is None:
        doc = {}
    top = _mapping(path, doc, "", TOP_KEYS)
    tls_doc = top.get("tls_server_config")
    tls = None if tls_doc is None else _tls(path, _mapping(path, tls_doc, "tls_server_config"))
    users_doc = top.get("basic_auth_users")
    users = {} if users_doc is None else _users(path, users_doc)
    if tls is None and not users:
        raise ConfigError(
            f"{path}: configures neither tls_server_config nor basic_auth_users, so nothing "
            "would be secured; fill it in, or leave web_config empty"
        )
    return WebConfig(path, tls, users)


def _fail(path: Path, key: str, problem: str) -> ConfigError:
    return ConfigError(f"{path}: {key}: {problem}" if key else f"{path}: {problem}")


def _mapping(
    path: Path, value: object, key: str, allowed: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """A YAML mapping whose keys are all in `allowed` (any string keys when None)."""
    if not isinstance(value, dict):
        raise _fail(path, key, f"expected a mapping, not {type(value).__name__}")
    for name in value:
        where = f"{key}.{name}" if key else str(name)
        if not isinstance(name, str):
            raise _fail(path, where, "keys are strings")
        if allowed is None or name in allowed:
            continue
        if where in UNSUPPORTED:
            raise _fail(path, where, f"not supported by cxkpi ({UNSUPPORTED[where]})")
        raise _fail(path, where, f"unknown key; expected one of {', '.join(allowed)}")
    return value


def _text(path: Path, doc: Mapping[str, Any], key: str, parent: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _fail(path, f"{parent}.{key}", f"expected a non-empty string, not {value!r}")
    return value


def _file(path: Path, doc: Mapping[str, Any], key: str) -> Path | None:
    """A file named by the key, relative to the config file's folder; it must be readable."""
    name = _text(path, doc, key, "tls_server_config")
    if name is None:
        return None
    file = path.parent / name
    if not file.is_file():
        raise _fail(path, f"tls_server_config.{key}", f"no such file: {file}")
    try:
        file.open("rb").close()
    except OSError as exc:
        problem = f"cannot read {file}: {exc.strerror}"
        raise _fail(path, f"tls_server_config.{key}", problem) from None
    return file


def _tls(path: Path, doc: Mapping[str, Any]) -> TlsConfig:
    _mapping(path, doc, "tls_server_config", TLS_KEYS)
    cert_file, key_file = _file(path, doc, "cert_file"), _file(path, doc, "key_file")
    if cert_file is None or key_file is None:
        missing = "cert_file" if cert_file is None else "key_file"
        raise _fail(path, f"tls_server_config.{missing}", "missing: TLS needs both files")
    auth = _text(path, doc, "client_auth_type", "tls_server_config") or "NoClientCert"
    if auth in UNVERIFIED_CLIENT_AUTH:
        raise _fail(
            path,
            "tls_server_config.client_auth_type",
            f"{auth} is not supported: it accepts client certificates without verifying them, "
            "which Python's ssl module does not do; use RequireAndVerifyClientCert (or "
            "VerifyClientCertIfGiven) with client_ca_file",
        )
    if auth not in CLIENT_AUTH:
        raise _fail(
            path,
            "tls_server_config.client_auth_type",
            f"invalid value {auth!r}: expected one of {', '.join(CLIENT_AUTH)}",
        )
    ca_file = _file(path, doc, "client_ca_file")
    if ca_file is not None and auth == "NoClientCert":
        raise _fail(
            path,
            "tls_server_config.client_ca_file",
            "given with client_auth_type NoClientCert, so no client certificate would be asked "
            "for; set client_auth_type to RequireAndVerifyClientCert",
        )
    if ca_file is None and auth != "NoClientCert":
        raise _fail(
            path,
            "tls_server_config.client_ca_file",
            f"missing: client_auth_type {auth} verifies client certificates against it",
        )
    low = _version(path, doc, "min_version", "TLS12")
    high = _version(path, doc, "max_version", "TLS13")
    if TLS_VERSIONS[low] > TLS_VERSIONS[high]:
        raise _fail(path, "tls_server_config.min_version", f"{low} is above max_version {high}")
    context = _context(path, cert_file, key_file, CLIENT_AUTH[auth], ca_file, low, high)
    return TlsConfig(cert_file, key_file, auth, ca_file, low, high, context)


def _version(path: Path, doc: Mapping[str, Any], key: str, default: str) -> str:
    value = _text(path, doc, key, "tls_server_config") or default
    if value not in TLS_VERSIONS:
        older = " (TLS 1.0 and 1.1 are deprecated, RFC 8996)" if value in ("TLS10", "TLS11") else ""
        expected = f"expected TLS12 or TLS13{older}"
        raise _fail(path, f"tls_server_config.{key}", f"invalid value {value!r}: {expected}")
    return value


class _EncryptedKey(Exception):
    """The key file asks for a password (OpenSSL would otherwise prompt on the terminal)."""


def _no_password() -> str:
    raise _EncryptedKey


def _context(
    path: Path,
    cert_file: Path,
    key_file: Path,
    verify_mode: ssl.VerifyMode,
    ca_file: Path | None,
    low: str,
    high: str,
) -> ssl.SSLContext:
    """The server's SSL context; certificates that do not load are a ConfigError."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[low]
    context.maximum_version = TLS_VERSIONS[high]
    try:
        context.load_cert_chain(cert_file, key_file, password=_no_password)
    except _EncryptedKey:
        raise _fail(
            path, "tls_server_config.key_file", f"{key_file} is encrypted; give an unencrypted key"
        ) from None
    except ssl.SSLError as exc:
        raise _fail(
            path,
            "tls_server_config.cert_file",
            f"{cert_file} with key {key_file} does not load as a PEM certificate and its private "
            f"key ({exc.reason or exc})",
        ) from None
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except ssl.SSLError as exc:
            raise _fail(
                path,
                "tls_server_config.client_ca_file",
                f"{ca_file} holds no PEM certificate ({exc.reason or exc})",
            ) from None
        if not context.get_ca_certs():
            raise _fail(path, "tls_server_config.client_ca_file", f"{ca_file} holds no CA")
    context.verify_mode = verify_mode
    return context


def _users(path: Path, doc: object) -> dict[str, bytes]:
    users: dict[str, bytes] = {}
    for user, hashed in _mapping(path, doc, "basic_auth_users").items():
        key = f"basic_auth_users.{user}"
        if not user or ":" in user:
            raise _fail(path, key, "a user name is not empty and has no ':' (basic auth)")
        if not isinstance(hashed, str) or not BCRYPT_HASH.fullmatch(hashed):
            # the hash itself is never shown: it is a secret of sorts (it can be attacked offline)
            raise _fail(
                path,
                key,
                "not a bcrypt hash ($2y$, $2b$ or $2a$, a cost from 04 to 31, 53 characters; "
                "e.g. from `htpasswd -nBC 10 USER`)",
            )
        users[user] = hashed.encode()
    return users
