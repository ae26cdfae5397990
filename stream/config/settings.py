"""Settings: one table of options, read from CLI flags, then environment variables, then the KPI
configuration file (`cxkpi.toml`, see stream/config/kpifile.py), then built-in defaults.

Every option is validated at start; a bad value stops the process with a message naming the
setting, where it came from, and what is allowed.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stream.config import (
    AUTO,
    ConfigError,
    window_name,
    window_problem,
    window_span,
)
from stream.config.change import Change, change_windows
from stream.config.kpifile import (
    DEFAULT_CONFIG_PATH,
    KpiConfig,
    default_kpi_config,
    load_kpi_config,
    settings_overrides,
)
from stream.config.options import BY_NAME, OPTIONS


@dataclass(frozen=True)
class Settings:
    """Validated settings (durations in seconds)."""

    config: str
    broker: str
    kafka_security_protocol: str
    kafka_sasl_mechanism: str
    kafka_sasl_username: str
    kafka_sasl_password: str
    kafka_ssl_cafile: str
    kafka_ssl_certfile: str
    kafka_ssl_keyfile: str
    redis_url: str
    app_id: str
    group_instance_id: str
    partitions: int
    windows: tuple[int, ...]
    step: int
    long_step: int
    grace: int
    inactivity_timeout: int
    idle_timeout: float
    max_future: int
    ticket_retention: int
    cart_retention: int
    session_timeout: int
    activation_period: int
    max_event_bytes: int
    max_segment_values: int
    web_host: str
    web_port: int
    web_config: str
    web_probes_open: bool
    flush_interval: float
    publish_interval: float
    profile: str
    log_level: str
    log_format: str
    customer_key_secret: str
    customer_period: int
    max_lifetime_periods: int
    sentiment_scorer: str
    sentiment_positive_at: float
    sentiment_negative_at: float
    data_dir: str
    kpis: KpiConfig | None = None  # the KPI configuration file, when one is used

    def __repr__(self) -> str:
        """As `describe()`: a repr ends up in logs and tracebacks, so it hides the secrets."""
        shown = ", ".join(f"{name}={value!r}" for name, value in self.describe().items())
        return f"Settings({shown})"

    @property
    def allow(self) -> dict[str, frozenset[str]]:
        """Segment allow-lists from the configuration file."""
        return dict(self.kpis.allow) if self.kpis is not None else {}

    def enabled(self, kpi: str) -> bool:
        """Whether a KPI is published (all are, without a configuration file)."""
        return self.kpis is None or self.kpis.kpis[kpi].enabled

    @property
    def changes(self) -> dict[str, Change]:
        """The change alerts by KPI: the file's, else the built-in defaults' (`--config none`
        keeps them: `cxkpi rules` generates the same alerts then, which need their windows)."""
        return (self.kpis or default_kpi_config()).changes()

    @property
    def state_windows_ms(self) -> tuple[int, ...]:
        """The window keys (ms) the worker keeps: the configured windows, then those the change
        alerts need that they lack (stream/config/change.py)."""
        configured = tuple(w * 1000 for w in self.windows)
        extra = change_windows(self.changes.values())
        return configured + tuple(k for k in extra if k not in configured)

    def reach_s(self) -> int:
        """How far back from stream time the windows kept reach, in seconds."""
        return max(sum(window_span(k)) for k in self.state_windows_ms) // 1000

    @classmethod
    def load(
        cls, flags: Mapping[str, str | None] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Settings from flags (name -> text or None), the environment, the file, the defaults."""
        flags = flags or {}
        environ = os.environ if environ is None else environ
        kpis = _kpi_file(flags.get("config") or environ.get("CXKPI_CONFIG") or "cxkpi.toml")
        from_file = _file_values(kpis)
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for option in OPTIONS:
            text, source = option.default, "default"
            if option.name in from_file:
                text, source = from_file[option.name], f"file {kpis.path}" if kpis else ""
            if option.env in environ:
                text, source = environ[option.env], f"environment variable {option.env}"
            if flags.get(option.name) is not None:
                text, source = str(flags[option.name]), f"flag {option.flag}"
            sources[option.name] = source
            try:
                values[option.name] = option.parse(text)
            except ValueError as exc:
                shown = "(hidden)" if option.secret else repr(text)
                raise ConfigError(
                    f"invalid {option.name} {shown} from {source}: expected {exc}"
                ) from None
        auto = values["ticket_retention"] is None
        settings = cls(**{**values, "ticket_retention": values["ticket_retention"] or 0}, kpis=kpis)
        if auto:  # the longest reach of every window kept, the change alerts' too, plus grace
            settings = replace(settings, ticket_retention=settings.reach_s() + settings.grace)
        settings.check()
        settings.check_changes()
        settings.check_alert_windows(sources["windows"])
        return settings

    def check(self) -> None:
        """Rules that tie several settings together."""
        if self.step <= 0 or self.long_step <= 0:
            raise ConfigError("invalid step: step and long_step must be greater than zero")
        if self.long_step % self.step:
            raise ConfigError(
                f"invalid long_step: {self.long_step}s must be a multiple of step ({self.step}s)"
            )
        for size in self.windows:
            problem = window_problem(size, self.step, self.long_step)
            if problem:
                raise ConfigError(f"invalid windows: {size}s is not {problem}")
        if self.sentiment_negative_at > self.sentiment_positive_at:
            raise ConfigError(
                f"invalid sentiment_negative_at: {self.sentiment_negative_at:g} is above "
                f"sentiment_positive_at ({self.sentiment_positive_at:g})"
            )
        if self.customer_period <= 0 or self.customer_period % self.long_step:
            raise ConfigError(
                f"invalid customer_period: {self.customer_period}s must be a positive multiple "
                f"of long_step ({self.long_step}s)"
            )
        for name in ("inactivity_timeout", "session_timeout", "activation_period"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"invalid {name}: must be greater than zero")
        reach = self.reach_s()
        shortest = reach + self.grace
        if self.ticket_retention < shortest:
            longest = (
                f"longest window ({window_name(reach)})"
                if reach == max(self.windows)
                else f"reach of the change alerts' baselines ({window_name(reach)})"
            )
            raise ConfigError(
                f"invalid ticket_retention {window_name(self.ticket_retention)}: shorter than the "
                f"{longest} plus grace ({window_name(self.grace)}), so a ticket reopened after "
                f"it would be counted wrong in that window; use at least "
                f"{window_name(shortest)} ({window_name(reach)} + {window_name(self.grace)}), "
                f"or {AUTO}"
            )
        shortest = self.inactivity_timeout + self.step + self.grace
        if self.cart_retention < shortest:
            raise ConfigError(
                f"invalid cart_retention {window_name(self.cart_retention)}: shorter than "
                f"inactivity_timeout + step + grace ({window_name(shortest)}), so a cart's "
                "customer would be forgotten before its session is; use at least that"
            )
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if sasl and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise ConfigError(
                f"kafka_security_protocol {self.kafka_security_protocol} needs "
                "kafka_sasl_username and kafka_sasl_password (CXKPI_KAFKA_SASL_USERNAME, "
                "CXKPI_KAFKA_SASL_PASSWORD)"
            )
        if bool(self.kafka_ssl_certfile) != bool(self.kafka_ssl_keyfile):
            raise ConfigError("kafka_ssl_certfile and kafka_ssl_keyfile go together: give both")
        uses_tls = self.kafka_security_protocol in ("SSL", "SASL_SSL")
        tls_files = self.kafka_ssl_cafile or self.kafka_ssl_certfile
        if tls_files and not uses_tls:
            raise ConfigError(
                "kafka_ssl_* files are set but kafka_security_protocol is "
                f"{self.kafka_security_protocol}: use SSL or SASL_SSL"
            )

    def check_changes(self) -> None:
        """The change alerts' windows must suit the steps given elsewhere (a flag, the
        environment) too, as the file's own steps were checked when it was read."""
        for name, change in self.changes.items():
            for field, size in (
                ("short", change.short_s),
                ("confirmation", change.confirmation_s),
                ("baseline", change.baseline_s),
            ):
                problem = window_problem(size, self.step, self.long_step)
                if problem:
                    raise ConfigError(
                        f"invalid kpis.{name}.change.{field} {window_name(size)}: not {problem} "
                        f"(step {self.step}s, long_step {self.long_step}s)"
                    )

    def check_alert_windows(self, source: str) -> None:
        """The file's alerts compare KPIs over its windows: windows given elsewhere (a flag, the
        environment) must keep them, as the file's own windows.sizes must."""
        if self.kpis is None:
            return
        needed = {
            name: k.alert.window_s
            for name, k in self.kpis.kpis.items()
            if k.alert is not None and k.alert.window_s is not None
        }
        missing = {name: w for name, w in needed.items() if w not in self.windows}
        if not missing:
            return
        shown = ",".join(window_name(w) for w in self.windows)
        lacking = ", ".join(window_name(w) for w in sorted(set(missing.values())))
        keep = ",".join(window_name(w) for w in sorted({*self.windows, *missing.values()}))
        raise ConfigError(
            f"invalid windows {shown} from {source}: the alerts in {self.kpis.path.name} use "
            f"windows these lack: {lacking} (e.g. kpis.{next(iter(missing))}.alert.window); use "
            f"--windows {keep}, change the alerts in {self.kpis.path}, or --config none"
        )

    def describe(self) -> dict[str, Any]:
        """The settings with secrets hidden, for logs and --help."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in BY_NAME:
                value = getattr(self, f.name)
                out[f.name] = _hidden(value) if BY_NAME[f.name].secret else value
        return out


def _kpi_file(name: str) -> KpiConfig | None:
    """The KPI configuration file named by the config setting, or None for 'none'."""
    if name.lower() == "none":
        return None
    path = Path(name)
    if not path.is_absolute() and not path.exists() and name == DEFAULT_CONFIG_PATH.name:
        path = DEFAULT_CONFIG_PATH
    if not path.exists():
        raise ConfigError(f"invalid config {name!r}: no such file; give a path, or 'none'")
    return load_kpi_config(path)


def _file_values(kpis: KpiConfig | None) -> dict[str, str]:
    return settings_overrides(kpis) if kpis is not None else {}


def _hidden(value: str) -> str:
    """A secret as it may be shown: a URL without its password, anything else as ***."""
    if "://" in value:
        return redact_url(value)
    return "***" if value else ""


def redact_url(url: str) -> str:
    """A URL with any password replaced by ***."""
    parsed = urlsplit(url)
    if not parsed.password:
        return url
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
    return parsed._replace(netloc=netloc).geturl()


def add_arguments(
    parser: argparse.ArgumentParser,
    names: tuple[str, ...] | None = None,
    defaults: Mapping[str, str] | None = None,
) -> None:
    """Add the flags of the named settings (all when None), each saying its env var and default;
    `defaults` names the defaults a command uses instead of the usual ones (the demo's)."""
    group = parser.add_argument_group(
        "settings (flag, else environment variable, else the config file, else default)"
    )
    for option in OPTIONS:
        if names is not None and option.name not in names:
            continue
        default = (defaults or {}).get(option.name, option.default)
        if option.secret:
            default = _hidden(default)
        group.add_argument(
            option.flag,
            dest=option.name,
            metavar="VALUE",
            default=None,
            help=f"{option.help} [env {option.env}; default {default}]",
        )


def flags_from(args: argparse.Namespace) -> dict[str, str | None]:
    return {o.name: getattr(args, o.name, None) for o in OPTIONS}
