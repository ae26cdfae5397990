"""Every setting: its flag, environment variable, default, parser and help.

One table (`OPTIONS`), so that the flags, the environment variables, `--help` and
docs/settings.md cannot drift apart; stream/config/settings.py reads them in order of precedence.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stream.config import AUTO, parse_duration


def _whole_seconds(text: str) -> int:
    value = parse_duration(text)
    if value != int(value):
        raise ValueError("a whole number of seconds (e.g. 90s, 5m)")
    return int(value)


def _retention(text: str) -> int | None:
    """`auto` (None: the longest window plus grace), or a whole number of seconds > 0."""
    if text.strip().lower() == AUTO:
        return None
    seconds = _whole_seconds(text)
    if seconds <= 0:
        raise ValueError(f"{AUTO!r} or a duration greater than zero")
    return seconds


def _durations(text: str) -> tuple[int, ...]:
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError("a comma-separated list of durations such as 5m,1h,24h")
    return tuple(_whole_seconds(p) for p in parts)


def _broker(text: str) -> str:
    for url in text.split(";"):
        parsed = urlsplit(url.strip() if "://" in url else f"kafka://{url.strip()}")
        if parsed.scheme not in ("kafka", "aiokafka") or not parsed.hostname:
            raise ValueError("kafka://HOST:PORT (several separated by ';')")
    return text


def _redis(text: str) -> str:
    if text.lower() in ("", "none", "off"):
        return ""
    if urlsplit(text).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("redis://[:password@]HOST:PORT/DB, rediss://… (TLS), unix://PATH, or none")
    return text


def _file(text: str) -> str:
    if text and not Path(text).is_file():
        raise ValueError("the path of a readable file, or empty")
    return text


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
        raise ValueError("true or false")
    return value in ("true", "yes", "1", "on")


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError("one of " + ", ".join(allowed))
        return text

    return parse


def _scorer(text: str) -> str:
    """A sentiment scorer by name: built in, registered, or an entry point (cxkpi.scorers)."""
    from stream.voice import names

    known = names()
    if text not in known:
        raise ValueError("one of " + ", ".join(known))
    return text


def _score_threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("a number from -1 to 1") from None
    if not -1.0 <= value <= 1.0:
        raise ValueError("a number from -1 to 1")
    return value


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"a whole number from {lo} to {hi}") from None
        if not lo <= value <= hi:
            raise ValueError(f"a whole number from {lo} to {hi}")
        return value

    return parse


def _positive_duration(text: str) -> float:
    value = parse_duration(text)
    if value <= 0:
        raise ValueError("a duration greater than zero")
    return value


#: The shortest customer_key_secret accepted: 128 bits, as many as the keys have.
MIN_SECRET_BYTES = 16


def _customer_secret(text: str) -> str:
    if text and len(text.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"at least {MIN_SECRET_BYTES} bytes (e.g. 32 random bytes as base64)")
    return text


def _name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", text):
        raise ValueError("1-64 letters, digits, '.', '_' or '-'")
    return text


def _instance_id(text: str) -> str:
    """Empty, or a name Kafka accepts as a group.instance.id."""
    if text and not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", text):
        raise ValueError("empty, or 1-249 letters, digits, '.', '_' or '-' (e.g. the pod's name)")
    return text


@dataclass(frozen=True)
class Option:
    """One setting: its flag, environment variable, parser and help."""

    name: str
    default: str
    parse: Callable[[str], Any]
    help: str
    secret: bool = False

    @property
    def env(self) -> str:
        return "CXKPI_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option(
        "config",
        "cxkpi.toml",
        str,
        "KPI configuration file (windows, timeouts, segments, KPIs, alert thresholds); a "
        "relative path is looked up from the working directory, then the installation; "
        "'none' for built-in defaults.",
    ),
    Option("broker", "kafka://localhost:9092", _broker, "Kafka bootstrap server URL(s)."),
    Option(
        "kafka_security_protocol",
        "PLAINTEXT",
        _choice("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
        "How to talk to Kafka: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (SASL over TLS).",
    ),
    Option(
        "kafka_sasl_mechanism",
        "PLAIN",
        _choice("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
        "SASL mechanism for the SASL_* protocols.",
    ),
    Option("kafka_sasl_username", "", str, "SASL user name (required for the SASL_* protocols)."),
    Option(
        "kafka_sasl_password",
        "",
        str,
        "SASL password; prefer the environment variable to the flag (flags show in ps).",
        secret=True,
    ),
    Option(
        "kafka_ssl_cafile",
        "",
        _file,
        "CA bundle (PEM) to verify the brokers with SSL and SASL_SSL; empty: the system's CAs.",
    ),
    Option(
        "kafka_ssl_certfile", "", _file, "Client certificate (PEM) for mutual TLS, with the key."
    ),
    Option("kafka_ssl_keyfile", "", _file, "Private key (PEM) of the client certificate."),
    Option(
        "redis_url",
        "redis://localhost:6379/0",
        _redis,
        "Redis URL for the merged snapshot; 'none' runs without it.",
        secret=True,
    ),
    Option("app_id", "cxkpi", _name, "Consumer group, changelog topic and Redis key prefix."),
    Option(
        "group_instance_id",
        "",
        _instance_id,
        "Static group membership (Kafka's group.instance.id): a name unique in the fleet and "
        "kept across restarts, typically the pod's name; a worker that comes back under it "
        "within the session timeout gets its partitions back without a rebalance. Empty: "
        "dynamic membership.",
    ),
    Option("partitions", "4", _int_range(1, 1024), "Partitions of every source topic."),
    Option(
        "windows",
        "5m,1h,24h,7d,30d",
        _durations,
        "Rolling window sizes, comma-separated, up to 400d; windows longer than 24h advance by "
        "long_step, the others by step.",
    ),
    Option("step", "1m", _whole_seconds, "How often windows of up to 24h advance (bucket size)."),
    Option(
        "long_step",
        "1h",
        _whole_seconds,
        "How often windows longer than 24h advance (their bucket size); a multiple of step.",
    ),
    Option("grace", "5m", _whole_seconds, "How late an event may be and still count."),
    Option(
        "inactivity_timeout", "30m", _whole_seconds, "A cart with no event this long is abandoned."
    ),
    Option(
        "idle_timeout",
        "1m",
        _positive_duration,
        "After this much wall time without events, a partition's stream time follows the clock.",
    ),
    Option(
        "max_future", "1h", _whole_seconds, "Events further ahead of the clock are dead-lettered."
    ),
    Option(
        "ticket_retention",
        AUTO,
        _retention,
        "A solved (not closed) ticket idle this long is forgotten, so a later reopen counts as a "
        "ticket never opened; open tickets never are. At least the longest window plus grace "
        "(auto: exactly that).",
    ),
    Option(
        "cart_retention",
        "7d",
        _whole_seconds,
        "How long after a cart's last event its customer is still known, for an order placed "
        "in a later session; at least inactivity_timeout + step + grace.",
    ),
    Option(
        "session_timeout",
        "30m",
        _whole_seconds,
        "A user's session with no event this long has ended (activity), at last event + timeout.",
    ),
    Option(
        "activation_period",
        "7d",
        _whole_seconds,
        "A user who signed up is activated when value is reached within this period, judged "
        "at sign-up + period (activity).",
    ),
    Option(
        "max_event_bytes",
        "65536",
        _int_range(64, 16 * 1024 * 1024),
        "Larger records are dead-lettered unparsed.",
    ),
    Option(
        "max_segment_values",
        "20",
        _int_range(1, 1000),
        "Distinct values kept per segment dimension; the rest count as 'other'.",
    ),
    Option("web_host", "127.0.0.1", str, "Address the HTTP server (/metrics, /kpis) binds to."),
    Option("web_port", "6066", _int_range(1, 65535), "Port of the HTTP server."),
    Option(
        "web_config",
        "",
        _file,
        "Web configuration file (the Prometheus exporter toolkit's format: tls_server_config, "
        "basic_auth_users) securing the HTTP server with TLS, client certificates and basic "
        "auth; checked at start. Empty: plain HTTP without auth.",
    ),
    Option(
        "web_probes_open",
        "true",
        _boolean,
        "With basic_auth_users in web_config, /health and /ready answer without credentials, "
        "for Kubernetes' probes (which cannot send them); every other path needs them. TLS "
        "applies to every path either way. false: the probes need credentials too.",
    ),
    Option(
        "flush_interval",
        "1s",
        _positive_duration,
        "How often state is written to the changelog and offsets become committable (in a "
        "catch-up also once 16,000 records of a topic wait or they changed 3,000 keys).",
    ),
    Option(
        "publish_interval",
        "1s",
        _positive_duration,
        "How old the Redis snapshot may grow: every worker writes its partitions' entries, and "
        "the writing worker merges them into the snapshot, twice per interval, so the snapshot "
        "is at most about one interval behind the entries it merges. When the writer stops, "
        "another worker takes over after three intervals.",
    ),
    Option(
        "profile",
        "production",
        _choice("production", "dev"),
        "'dev' uses settings for the embedded dev broker (short session and rebalance "
        "timeouts, a 100 ms fetch wait).",
    ),
    Option(
        "log_level",
        "info",
        _choice("debug", "info", "warning", "error"),
        "Logging verbosity.",
    ),
    Option(
        "log_format",
        "text",
        _choice("text", "json"),
        "'text': one plain line per record; 'json': one JSON object per line, for log shippers.",
    ),
    Option(
        "customer_key_secret",
        "",
        _customer_secret,
        "Secret of the pseudonymous customer keys (HMAC-SHA256 of customer_id): the same for "
        "every worker and kept across restarts, or a customer's orders no longer meet; set it "
        "in the environment, not as a flag (flags show in ps). Empty: customer KPIs need "
        "--profile dev, which keeps a generated one under data_dir.",
        secret=True,
    ),
    Option(
        "customer_period",
        "30d",
        _whole_seconds,
        "The period P of the customer KPIs: active = ordered in the last P, previous = in the "
        "P before; a multiple of long_step.",
    ),
    Option(
        "max_lifetime_periods",
        "36",
        _int_range(1, 1000),
        "Cap of a customer's expected lifetime in periods (1 / churn) in customer lifetime value.",
    ),
    Option(
        "sentiment_scorer",
        "lexicon",
        _scorer,
        "What scores comments, reviews and mentions (docs/sentiment.md): 'lexicon' (built in, "
        "English, Dutch, German, French), or a scorer of one's own registered under that name.",
    ),
    Option(
        "sentiment_positive_at",
        "0.05",
        _score_threshold,
        "A text scoring at least this (-1..1) is positive.",
    ),
    Option(
        "sentiment_negative_at",
        "-0.05",
        _score_threshold,
        "A text scoring at most this (-1..1, not above sentiment_positive_at) is negative; "
        "between the two, neutral.",
    ),
    Option(
        "data_dir",
        str(Path(tempfile.gettempdir()) / "cxkpi"),
        str,
        "Folder of the worker's scratch files, one subfolder per app id (state itself lives "
        "in memory and in the changelog).",
    ),
)
BY_NAME = {o.name: o for o in OPTIONS}
