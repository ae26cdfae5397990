"""The --web-config file: what it accepts, the SSL context it builds, and one line for each
mistake (the file, the key, what to do), never a traceback or a secret."""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path

import bcrypt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from stream.config import ConfigError
from stream.config.settings import Settings
from stream.config.webconfig import load_web_config
from tests.certificates import Pki, make_pki

#: cost 4: the format's lowest, so the tests need no time for hashing
HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def folder(tmp_path: Path, pki: Pki) -> Path:
    """A folder holding the PKI's files beside the config file, named relatively in it."""
    for file in (pki.ca, pki.server_cert, pki.server_key, pki.client_cert, pki.client_key):
        shutil.copy(file, tmp_path / file.name)
    return tmp_path


def tls(**extra: object) -> dict[str, object]:
    return {"cert_file": "server.pem", "key_file": "server-key.pem", **extra}


def write(folder: Path, doc: object) -> Path:
    path = folder / "web.yml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def error_of(folder: Path, doc: object) -> str:
    path = write(folder, doc)
    with pytest.raises(ConfigError) as error:
        load_web_config(path)
    message = str(error.value)
    assert "\n" not in message, "one line"
    assert message.startswith(f"{path}: "), "names the file"
    return message.removeprefix(f"{path}: ")


def test_a_full_file_gives_tls_with_verified_client_certificates_and_users(folder: Path) -> None:
    path = write(
        folder,
        {
            "tls_server_config": tls(
                client_auth_type="RequireAndVerifyClientCert",
                client_ca_file="ca.pem",
                min_version="TLS13",
            ),
            "basic_auth_users": {"prometheus": HASH},
        },
    )
    config = load_web_config(path)
    assert config.tls is not None and config.ssl_context is config.tls.context
    assert config.tls.cert_file == folder / "server.pem", "relative to the file's folder"
    assert config.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert config.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert config.ssl_context.maximum_version == ssl.TLSVersion.TLSv1_3
    assert [c["subject"] for c in config.ssl_context.get_ca_certs()] == [
        ((("commonName", "cxkpi test CA"),),)
    ]
    assert dict(config.users) == {"prometheus": HASH.encode()}
    assert "prometheus" not in config.describe() and HASH not in repr(config)


def test_defaults_are_tls12_to_13_without_client_certificates(folder: Path) -> None:
    config = load_web_config(write(folder, {"tls_server_config": tls()}))
    assert config.ssl_context is not None
    assert config.ssl_context.verify_mode == ssl.CERT_NONE
    assert config.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert config.ssl_context.maximum_version == ssl.TLSVersion.TLSv1_3
    assert config.users == {}


def test_verify_if_given_asks_for_an_optional_certificate(folder: Path) -> None:
    doc = {
        "tls_server_config": tls(
            client_auth_type="VerifyClientCertIfGiven", client_ca_file="ca.pem"
        )
    }
    context = load_web_config(write(folder, doc)).ssl_context
    assert context is not None and context.verify_mode == ssl.CERT_OPTIONAL


def test_basic_auth_alone_serves_plain_http(folder: Path) -> None:
    config = load_web_config(write(folder, {"basic_auth_users": {"a": HASH}}))
    assert config.tls is None and config.ssl_context is None
    assert "TLS off" in config.describe()


@pytest.mark.parametrize("prefix", ["$2y$", "$2b$", "$2a$"])
def test_every_bcrypt_prefix_htpasswd_and_python_write_is_accepted(
    folder: Path, prefix: str
) -> None:
    hashed = prefix + HASH[4:]
    config = load_web_config(write(folder, {"basic_auth_users": {"a": hashed}}))
    assert bcrypt.checkpw(b"s3cret", config.users["a"])


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("", "configures neither tls_server_config nor basic_auth_users"),
        ("tls_server_config: [\n", "invalid YAML at line 2"),
        ("- a\n- b\n", "expected a mapping, not list"),
        (
            {"basic_auth_user": {}},
            "basic_auth_user: unknown key; expected one of tls_server_config",
        ),
        ({"rate_limit": {"burst": 1}}, "rate_limit: not supported by cxkpi (rate limiting"),
        ({"http_server_config": {"http2": False}}, "http_server_config: not supported by cxkpi"),
        ({"tls_server_config": tls(cipher_suites=["X"])}, "cipher_suites: not supported"),
        ({"tls_server_config": tls(client_allowed_sans=["a"])}, "SAN matching is not implemented"),
        ({"tls_server_config": tls(cert="PEM")}, "tls_server_config.cert: not supported"),
        ({"tls_server_config": tls(certfile="x")}, "tls_server_config.certfile: unknown key"),
        ({"tls_server_config": "on"}, "tls_server_config: expected a mapping, not str"),
        ({"tls_server_config": tls(cert_file="gone.pem")}, "cert_file: no such file: "),
        ({"tls_server_config": {"cert_file": "server.pem"}}, "key_file: missing: TLS needs both"),
        ({"tls_server_config": {"key_file": "server-key.pem"}}, "cert_file: missing"),
        ({"tls_server_config": tls(cert_file="")}, "cert_file: expected a non-empty string"),
        (
            {"tls_server_config": tls(key_file="client-key.pem")},
            "cert_file: " + "{folder}/server.pem with key {folder}/client-key.pem does not load",
        ),
        (
            {"tls_server_config": tls(client_auth_type="Always")},
            "client_auth_type: invalid value 'Always': expected one of NoClientCert, "
            "VerifyClientCertIfGiven, RequireAndVerifyClientCert",
        ),
        (
            {
                "tls_server_config": tls(
                    client_auth_type="RequestClientCert", client_ca_file="ca.pem"
                )
            },
            "client_auth_type: RequestClientCert is not supported: it accepts client "
            "certificates without verifying them",
        ),
        (
            {"tls_server_config": tls(client_auth_type="RequireAnyClientCert")},
            "RequireAnyClientCert is not supported",
        ),
        (
            {"tls_server_config": tls(client_auth_type="RequireAndVerifyClientCert")},
            "client_ca_file: missing: client_auth_type RequireAndVerifyClientCert verifies",
        ),
        (
            {"tls_server_config": tls(client_ca_file="ca.pem")},
            "client_ca_file: given with client_auth_type NoClientCert",
        ),
        (
            {
                "tls_server_config": tls(
                    client_auth_type="RequireAndVerifyClientCert", client_ca_file="server-key.pem"
                )
            },
            "client_ca_file: {folder}/server-key.pem holds no PEM certificate",
        ),
        (
            {"tls_server_config": tls(min_version="TLS11")},
            "min_version: invalid value 'TLS11': "
            "expected TLS12 or TLS13 (TLS 1.0 and 1.1 are deprecated, RFC 8996)",
        ),
        ({"tls_server_config": tls(max_version="TLS14")}, "max_version: invalid value 'TLS14'"),
        (
            {"tls_server_config": tls(min_version="TLS13", max_version="TLS12")},
            "min_version: TLS13 is above max_version TLS12",
        ),
        ({"basic_auth_users": ["a"]}, "basic_auth_users: expected a mapping, not list"),
        ({"basic_auth_users": {"a:b": HASH}}, "basic_auth_users.a:b: a user name is not empty"),
        ({"basic_auth_users": {"": HASH}}, "basic_auth_users.: a user name is not empty"),
        ({"basic_auth_users": {1: HASH}}, "basic_auth_users.1: keys are strings"),
        ({"basic_auth_users": {"a": None}}, "basic_auth_users.a: not a bcrypt hash"),
        ({"basic_auth_users": {"a": "$2x$" + HASH[4:]}}, "basic_auth_users.a: not a bcrypt hash"),
        ({"basic_auth_users": {"a": HASH[:-1]}}, "basic_auth_users.a: not a bcrypt hash"),
        ({"basic_auth_users": {"a": "$2b$03$" + HASH[7:]}}, "a cost from 04 to 31"),
        ({"basic_auth_users": {"a": "s3cret"}}, "not a bcrypt hash ($2y$, $2b$ or $2a$"),
    ],
)
def test_each_mistake_is_one_line_naming_the_key(folder: Path, doc: object, message: str) -> None:
    assert message.format(folder=folder) in error_of(folder, doc)


def test_a_plain_password_in_place_of_a_hash_is_never_shown(folder: Path) -> None:
    assert "s3cret" not in error_of(folder, {"basic_auth_users": {"a": "s3cret"}})


def test_an_encrypted_key_is_refused_without_prompting(folder: Path, pki: Pki) -> None:
    key = serialization.load_pem_private_key(pki.server_key.read_bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pass"),
    )
    (folder / "encrypted-key.pem").write_bytes(encrypted)
    message = error_of(folder, {"tls_server_config": tls(key_file="encrypted-key.pem")})
    assert message == (
        f"tls_server_config.key_file: {folder}/encrypted-key.pem is encrypted; give an "
        "unencrypted key"
    )


def test_a_file_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"web.yml: cannot read the web config: No such file"):
        load_web_config(tmp_path / "web.yml")
    (tmp_path / "binary.yml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match=r"binary.yml: not a text file \(UTF-8\)"):
        load_web_config(tmp_path / "binary.yml")


def test_the_settings_name_the_file_and_keep_the_probes_open_by_default(folder: Path) -> None:
    path = write(folder, {"basic_auth_users": {"a": HASH}})
    settings = Settings.load({"config": "none", "web_config": str(path)}, environ={})
    assert (settings.web_config, settings.web_probes_open) == (str(path), True)
    environ = {"CXKPI_WEB_CONFIG": str(path), "CXKPI_WEB_PROBES_OPEN": "false"}
    settings = Settings.load({"config": "none"}, environ=environ)
    assert (settings.web_config, settings.web_probes_open) == (str(path), False)
    assert Settings.load({"config": "none"}, environ={}).web_config == ""


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            {"web_config": "/no/such/web.yml"},
            "invalid web_config '/no/such/web.yml' from flag "
            "--web-config: expected the path of a readable file, or empty",
        ),
        (
            {"web_probes_open": "maybe"},
            "invalid web_probes_open 'maybe' from flag --web-probes-open: expected true or false",
        ),
    ],
)
def test_bad_settings_are_refused(flags: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.load({"config": "none", **flags}, environ={})
    assert str(error.value) == message


def test_the_example_of_the_operations_guide_loads(folder: Path) -> None:
    """docs/operations.md's example file, with its files in place, is accepted as written."""
    guide = (Path(__file__).resolve().parents[3] / "docs" / "operations.md").read_text()
    example = "#" + guide.split("# /etc/cxkpi/web.yml", 1)[1].split("```", 1)[0]
    shutil.copy(folder / "ca.pem", folder / "clients-ca.pem")
    config = load_web_config(write(folder, example))
    assert config.tls is not None and config.tls.client_auth_type == "RequireAndVerifyClientCert"
    assert bcrypt.checkpw(b"not-a-real-password", config.users["prometheus"])
