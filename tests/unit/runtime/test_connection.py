"""Kafka security settings (TLS, SASL PLAIN/SCRAM) and Redis auth: accepted, checked at start,
passed to every client, and never shown."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import faust
import pytest

from stream.app import faust_settings
from stream.config import ConfigError
from stream.config.settings import Settings
from stream.runtime.connection import client_options, faust_credentials

ROOT = Path(__file__).resolve().parents[3]
SECRETS = {
    "CXKPI_KAFKA_SASL_PASSWORD": "kafka-pw-Zq81",
    "CXKPI_REDIS_URL": "rediss://cxkpi:redis-pw-Lm42@redis.example:6380/0",
}


@pytest.fixture(scope="module")
def client_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and key, made by openssl, standing in for a CA and a client."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "client.pem", folder / "client.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=cxkpi-test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_plaintext_is_the_default() -> None:
    settings = Settings.load({}, environ={})
    assert client_options(settings) == {
        "bootstrap_servers": ["localhost:9092"],
        "security_protocol": "PLAINTEXT",
    }
    assert faust_credentials(settings) is None


def test_sasl_scram_over_tls_reaches_faust_and_aiokafka(client_cert: tuple[Path, Path]) -> None:
    cert, key = client_cert
    env = {
        "CXKPI_BROKER": "kafka://k1:9093;kafka://k2:9093",
        "CXKPI_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "CXKPI_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "CXKPI_KAFKA_SASL_USERNAME": "cxkpi",
        "CXKPI_KAFKA_SASL_PASSWORD": "kafka-pw-Zq81",
        "CXKPI_KAFKA_SSL_CAFILE": str(cert),
        "CXKPI_KAFKA_SSL_CERTFILE": str(cert),
        "CXKPI_KAFKA_SSL_KEYFILE": str(key),
    }
    settings = Settings.load({}, environ=env)
    options = client_options(settings)
    assert options["bootstrap_servers"] == ["k1:9093", "k2:9093"]
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "cxkpi",
        "kafka-pw-Zq81",
    )
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert context.get_ca_certs()[0]["subject"] == ((("commonName", "cxkpi-test"),),)
    credentials = faust_settings(settings)["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.ssl_context is not None


def test_tls_only_and_sasl_plain() -> None:
    tls = Settings.load({"kafka_security_protocol": "SSL"}, environ={})
    assert isinstance(faust_credentials(tls), faust.SSLCredentials)
    assert "sasl_mechanism" not in client_options(tls)
    plain = Settings.load(
        {
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_username": "u",
            "kafka_sasl_password": "p",
        },
        environ={},
    )
    credentials = faust_credentials(plain)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_PLAINTEXT" and credentials.mechanism.value == "PLAIN"
    assert "ssl_context" not in client_options(plain)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "u"},
            "needs kafka_sasl_username and kafka_sasl_password",
        ),
        ({"kafka_security_protocol": "TLS"}, "expected one of PLAINTEXT, SSL, SASL_PLAINTEXT"),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "expected one of PLAIN, SCRAM-SHA-256"),
        ({"kafka_ssl_cafile": "/no/such/ca.pem"}, "expected the path of a readable file"),
        ({"kafka_ssl_certfile": __file__}, "kafka_ssl_certfile and kafka_ssl_keyfile go together"),
        ({"kafka_ssl_cafile": __file__}, "kafka_ssl_* files are set but kafka_security_protocol"),
    ],
)
def test_bad_security_settings_fail_at_start(flags: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.load(flags, environ={})
    assert message in str(error.value)


def test_secrets_are_hidden_from_describe_and_errors() -> None:
    settings = Settings.load({}, environ=SECRETS)
    shown = str(settings.describe())
    assert "kafka-pw-Zq81" not in shown and "redis-pw-Lm42" not in shown
    assert "rediss://cxkpi:***@redis.example:6380/0" in shown
    with pytest.raises(ConfigError) as error:
        Settings.load({}, environ={"CXKPI_REDIS_URL": "http://u:redis-pw-Lm42@x"})
    assert "redis-pw-Lm42" not in str(error.value)


@pytest.mark.parametrize("command", ["worker", "produce", "generate", "topics", "dev"])
def test_help_never_shows_secrets_from_the_environment(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stream", command, "--help"],
        env={**os.environ, **SECRETS},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "kafka-pw-Zq81" not in result.stdout and "redis-pw-Lm42" not in result.stdout
    if command != "dev":
        assert "--kafka-sasl-password" in result.stdout
