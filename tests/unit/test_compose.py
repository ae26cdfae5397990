"""docker-compose.yml, the Dockerfile and the ops/ configs agree with each other and with the
worker's own settings, so `docker compose up` brings up a product whose parts find each other.

No Docker engine is needed: the files are read as data, the worker's environment goes through
the worker's own validation, and promtool/amtool check the Prometheus and Alertmanager configs.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from stream.config.options import OPTIONS
from stream.config.secret import customer_secret
from stream.config.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SERVICES = {"kafka", "redis", "worker", "generator", "prometheus", "alertmanager", "grafana"}
SETTING_ENV_NAMES = {option.env for option in OPTIONS}
# Where the official images read their configuration (their default --config.file).
PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"
ALERTMANAGER_CONFIG = "/etc/alertmanager/alertmanager.yml"
GRAFANA_PROVISIONING = "/etc/grafana/provisioning"
#: What `docker compose` would read from the shell or `.env` (a made-up secret)
HOST_ENV = {"CXKPI_CUSTOMER_KEY_SECRET": "not-a-real-secret-but-long-enough"}
#: Compose's `${NAME}`, `${NAME:?message}` and `${NAME:-default}` interpolation
INTERPOLATION = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")


# ---- reading the files ----------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = load_yaml(REPO / "docker-compose.yml")
    assert isinstance(document, dict) and isinstance(document.get("services"), dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as text, whether written as a mapping or as KEY=VALUE items."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items() if value is not None}


def interpolated(value: str, host_env: dict[str, str]) -> str:
    """The value as `docker compose` passes it, given the shell's (or `.env`'s) variables."""

    def resolve(match: re.Match[str]) -> str:
        name, how, text = match.groups()
        if host_env.get(name):
            return host_env[name]
        if how == "?":
            raise AssertionError(f"compose stops: {text}")
        return text if how == "-" else ""

    return INTERPOLATION.sub(resolve, value)


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Dependency -> condition (the short list form means service_started)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of the service's bind mounts; named volumes are left out."""
    mounts: list[tuple[str, str]] = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((volume["source"], volume["target"]))
            continue
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def named_volumes(service: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "volume":
                names.add(volume["source"])
        elif not volume.startswith((".", "/")) and ":" in volume:
            names.add(volume.split(":")[0])
    return names


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """The repository path a container path comes from, through the service's bind mounts
    (the deepest mount wins, as in Docker)."""
    wanted = PurePosixPath(container_path)
    best: tuple[int, Path] | None = None
    for source, target in bind_mounts(service):
        mount = PurePosixPath(target)
        if wanted == mount or mount in wanted.parents:
            depth = len(mount.parts)
            if best is None or depth > best[0]:
                best = (depth, REPO / source / wanted.relative_to(mount))
    assert best is not None, f"{container_path} is not bind-mounted from the repository"
    return best[1].resolve()


def container_ports(service: dict[str, Any]) -> set[int]:
    """Ports the service's container listens on, from `ports` (container side) and `expose`."""
    ports = {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports") or []}
    return ports | {int(str(p).split("/")[0]) for p in service.get("expose") or []}


def url_host_port(url: str) -> tuple[str, int]:
    """Host and port of a URL, a Kafka listener (NAME://host:port) or a bare host:port."""
    parts = urlsplit("//" + url.split("://", 1)[-1])
    assert parts.hostname and parts.port, f"no host:port in {url!r}"
    return parts.hostname, parts.port


def dockerfile(context: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile in a build context, continuations joined."""
    lines: list[str] = []
    current = ""
    for raw in (context / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        current += line.removesuffix("\\").strip() + " "
        if not line.endswith("\\"):
            lines.append(current.strip())
            current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in instructions:
        if instruction == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(args))
    return env


def build_context(service: dict[str, Any]) -> Path:
    build = service["build"]
    return (REPO / (build if isinstance(build, str) else build.get("context", "."))).resolve()


def dockerignored(context: Path, path: str) -> bool:
    """Whether .dockerignore leaves `path` out of the build context (last matching rule wins; a
    rule matching a directory covers what is inside)."""
    ignore = context / ".dockerignore"
    if not ignore.exists():
        return False
    candidates = [path, *(str(parent) for parent in PurePosixPath(path).parents if parent.name)]
    excluded = False
    for rule in ignore.read_text(encoding="utf-8").splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negated = rule.startswith("!")
        pattern = rule.lstrip("!").strip("/")
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            excluded = not negated
    return excluded


def worker_settings(services: dict[str, dict[str, Any]], name: str) -> Settings:
    """The settings a container of the service would start with: the image's CXKPI_ environment
    under the compose environment, checked by the worker's own loader (the image's working
    directory holds the repository's cxkpi.toml, as the repository root does here)."""
    service = services[name]
    image_env = dockerfile_env(dockerfile(build_context(service)))
    compose_env = {k: interpolated(v, HOST_ENV) for k, v in environment(service).items()}
    env = {k: v for k, v in image_env.items() if k.startswith("CXKPI_")} | compose_env
    unknown = {k for k in env if k.startswith("CXKPI_")} - SETTING_ENV_NAMES
    assert not unknown, f"{name}: not settings of the worker: {sorted(unknown)}"
    return Settings.load({}, environ=env)


def prometheus_config(services: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return load_yaml(host_path(services["prometheus"], PROMETHEUS_CONFIG))


def cxkpi_scrape_job(services: dict[str, dict[str, Any]]) -> dict[str, Any]:
    jobs = [j for j in prometheus_config(services)["scrape_configs"] if j["job_name"] == "cxkpi"]
    assert len(jobs) == 1, "prometheus.yml needs exactly one scrape job `cxkpi`"
    return jobs[0]


def datasource_uids(value: Any) -> set[str]:
    """Every datasource uid a Grafana dashboard (or part of one) refers to."""
    if isinstance(value, list):
        return set().union(*map(datasource_uids, value))
    if not isinstance(value, dict):
        return set()
    found = set().union(*map(datasource_uids, value.values()))
    source = value.get("datasource")
    if isinstance(source, dict) and "uid" in source:
        found.add(source["uid"])
    return found


def provisioned_datasources(services: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    folder = host_path(services["grafana"], f"{GRAFANA_PROVISIONING}/datasources")
    return [s for path in folder.glob("*.y*ml") for s in load_yaml(path)["datasources"]]


def rule_file_globs(services: dict[str, dict[str, Any]]) -> list[Path]:
    """The rule_files patterns of prometheus.yml as repository paths (through the mounts)."""
    patterns = prometheus_config(services).get("rule_files") or []
    assert patterns, "prometheus.yml loads no rule files"
    return [host_path(services["prometheus"], pattern) for pattern in patterns]


# ---- the services ---------------------------------------------------------------------------


def test_the_product_services_exist_and_only_the_generator_is_optional(
    services: dict[str, dict[str, Any]],
) -> None:
    assert set(services) >= SERVICES
    assert services["generator"].get("profiles") == ["demo"]
    in_profiles = {name for name, service in services.items() if service.get("profiles")}
    assert in_profiles == {"generator"}, "`docker compose up` must start everything else"


def test_the_worker_scales_and_waits_for_kafka_and_redis(
    services: dict[str, dict[str, Any]],
) -> None:
    worker = services["worker"]
    assert "ports" not in worker, "a fixed host port breaks `docker compose up --scale worker=N`"
    assert "container_name" not in worker, "a fixed container name breaks scaling too"
    assert depends_on(worker) == {"kafka": "service_healthy", "redis": "service_healthy"}
    assert worker.get("restart") == "unless-stopped"


def test_waiting_for_a_healthy_service_needs_its_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for dependency, condition in depends_on(service).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            if condition == "service_healthy":
                check = services[dependency].get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), (
                    f"{name} waits for {dependency} to be healthy, which has no healthcheck"
                )


def test_containers_that_run_no_web_server_turn_off_the_image_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    """The image's HEALTHCHECK asks the worker's /health; a generator would be unhealthy."""
    for name, service in services.items():
        if "build" not in service:
            continue
        command = service.get("command") or ["worker"]
        command = shlex.split(command) if isinstance(command, str) else command
        if command[0] != "worker":
            assert (service.get("healthcheck") or {}).get("disable") is True, name


def test_bind_mounts_come_from_the_repository_and_volumes_are_declared(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for source, target in bind_mounts(service):
            assert source.startswith("./"), f"{name}: {source} is outside the repository"
            assert (REPO / source).exists(), f"{name} mounts {source} at {target}: missing"
        assert named_volumes(service) <= declared, f"{name} uses an undeclared volume"
    assert {"kafka-data", "prometheus-data", "grafana-data"} <= declared


# ---- the image ------------------------------------------------------------------------------


def test_every_build_context_has_a_dockerfile_that_gets_what_it_copies(
    services: dict[str, dict[str, Any]],
) -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    readme = pyproject["project"]["readme"]
    for name, service in services.items():
        if "build" not in service:
            continue
        context = build_context(service)
        assert (context / "Dockerfile").is_file(), f"{name}: no Dockerfile in {context}"
        copied: set[str] = set()
        for instruction, args in dockerfile(context):
            if instruction in ("COPY", "ADD") and "--from" not in args:
                *sources, _ = [a for a in shlex.split(args) if not a.startswith("--")]
                copied.update(sources)
        for source in copied:
            assert (context / source).exists(), f"Dockerfile copies missing {source}"
            assert not dockerignored(context, source), f".dockerignore leaves out {source}"
        # `pip install .` needs every file pyproject.toml names, and the worker reads these.
        assert {"pyproject.toml", readme, "stream", "schemas", "cxkpi.toml"} <= copied


def test_the_image_runs_cxkpi_as_a_non_root_user_with_a_healthcheck() -> None:
    instructions = dict(dockerfile(REPO))  # the last of each instruction is the one that counts
    assert instructions["FROM"].startswith("python:3.11-slim")
    assert instructions["USER"] not in ("root", "0")
    assert json.loads(instructions["ENTRYPOINT"]) == ["cxkpi"]
    assert json.loads(instructions["CMD"]) == ["worker"]
    assert "/health" in instructions["HEALTHCHECK"]


# ---- settings and ports that must agree -----------------------------------------------------


def test_worker_environment_passes_the_workers_own_validation(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    worker = worker_settings(services, "worker")
    assert worker.web_host == "0.0.0.0", "Prometheus scrapes from another container"
    host, port = url_host_port(worker.broker)
    assert host in services
    advertised = environment(services[host])["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert (host, port) in {url_host_port(listener) for listener in advertised}
    assert urlsplit(worker.redis_url).hostname in services
    generator = worker_settings(services, "generator")
    # Both create the topics: they must agree on where and with how many partitions.
    assert (generator.broker, generator.partitions) == (worker.broker, worker.partitions)


def test_the_customer_key_secret_comes_from_the_environment_and_compose_stops_without(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    worker = worker_settings(services, "worker")
    assert worker.profile != "dev", "production workers never generate a secret"
    assert customer_secret(worker) == HOST_ENV["CXKPI_CUSTOMER_KEY_SECRET"].encode()
    written = environment(services["worker"])["CXKPI_CUSTOMER_KEY_SECRET"]
    with pytest.raises(AssertionError, match="compose stops: set CXKPI_CUSTOMER_KEY_SECRET"):
        interpolated(written, {})
    for name, service in services.items():
        for key, value in environment(service).items():
            if "SECRET" in key or "PASSWORD" in key:
                assert INTERPOLATION.fullmatch(value), f"{name}: {key} is written in the file"


def test_the_worker_port_is_the_one_prometheus_scrapes_and_the_image_exposes(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    port = worker_settings(services, "worker").web_port
    (discovery,) = cxkpi_scrape_job(services)["dns_sd_configs"]
    assert discovery["names"] == ["worker"] and discovery.get("type", "SRV") == "A"
    assert discovery["port"] == port
    exposed = [a.split() for i, a in dockerfile(REPO) if i == "EXPOSE"]
    assert port in {int(p.split("/")[0]) for ports in exposed for p in ports}
    assert container_ports(services["worker"]) == {port}


def test_every_prometheus_rule_file_pattern_finds_rules_in_the_repository(
    services: dict[str, dict[str, Any]],
) -> None:
    for pattern in rule_file_globs(services):
        assert pattern.parent.is_dir(), f"{pattern.parent} does not exist"
        files = sorted(pattern.parent.glob(pattern.name))
        assert files, f"no rule file matches {pattern.relative_to(REPO)}"
        for path in files:
            assert path.stat().st_size > 0, f"{path.relative_to(REPO)} is empty"


def test_prometheus_sends_alerts_to_the_alertmanager_service(
    services: dict[str, dict[str, Any]],
) -> None:
    managers = prometheus_config(services)["alerting"]["alertmanagers"]
    targets = [t for m in managers for c in m["static_configs"] for t in c["targets"]]
    assert targets
    for target in targets:
        host, port = url_host_port(target)
        assert host == "alertmanager" and port in container_ports(services[host]), target
    assert depends_on(services["prometheus"]).get("alertmanager") == "service_healthy"


def test_grafana_reads_the_prometheus_service_by_uid(
    services: dict[str, dict[str, Any]],
) -> None:
    sources = provisioned_datasources(services)
    (prometheus,) = [s for s in sources if s["type"] == "prometheus"]
    assert prometheus["uid"] == "prometheus" and prometheus["isDefault"] is True
    host, port = url_host_port(prometheus["url"])
    assert host == "prometheus" and port in container_ports(services[host])


def test_grafana_loads_the_repository_dashboards_and_opens_on_one(
    services: dict[str, dict[str, Any]],
) -> None:
    """Panels may name a provisioned datasource uid or a dashboard variable (`${...}`);
    any other uid shows "datasource not found"."""
    grafana = services["grafana"]
    uids = {source["uid"] for source in provisioned_datasources(services)}
    folder = host_path(grafana, f"{GRAFANA_PROVISIONING}/dashboards")
    providers = [p for path in folder.glob("*.y*ml") for p in load_yaml(path)["providers"]]
    assert providers, "no dashboard provider is provisioned"
    for provider in providers:
        dashboards = host_path(grafana, provider["options"]["path"])
        files = sorted(dashboards.glob("*.json"))
        assert files, f"no dashboard JSON in {dashboards.relative_to(REPO)}"
        for path in files:
            dashboard = json.loads(path.read_text(encoding="utf-8"))
            unknown = {u for u in datasource_uids(dashboard) if not u.startswith("$")} - uids
            assert not unknown, f"{path.name} refers to unknown datasources {unknown}"
    home = host_path(grafana, environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home.is_file(), f"the home dashboard {home.relative_to(REPO)} does not exist"
    assert any(home.parent == host_path(grafana, p["options"]["path"]) for p in providers)


# ---- the tools' own checks ------------------------------------------------------------------


def run_tool(*command: str) -> None:
    """Run a config checker; a missing binary fails (CI installs promtool and amtool)."""
    assert shutil.which(command[0]), (
        f"{command[0]} is not installed (Debian packages prometheus, prometheus-alertmanager)"
    )
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_prometheus_config_and_its_rules(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """The rule_files point into the container; the copy checked here points at the repository,
    so the rules themselves are checked too."""
    config = prometheus_config(services)
    config["rule_files"] = [str(pattern) for pattern in rule_file_globs(services)]
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config), encoding="utf-8")
    run_tool("promtool", "check", "config", str(checked))


def test_amtool_accepts_the_alertmanager_config(services: dict[str, dict[str, Any]]) -> None:
    run_tool(
        "amtool", "check-config", str(host_path(services["alertmanager"], ALERTMANAGER_CONFIG))
    )


def test_every_published_port_is_bound_to_loopback(services: dict[str, dict[str, Any]]) -> None:
    """Grafana (anonymous viewers, a default admin password), Prometheus and Alertmanager are
    reachable from this machine only, unless someone opens them on purpose."""
    published = [
        (name, str(port)) for name, service in services.items() for port in service.get("ports", [])
    ]
    assert {"grafana", "prometheus", "alertmanager"} <= {name for name, _ in published}
    assert all(port.startswith("127.0.0.1:") for _, port in published), published


def test_the_default_alert_receiver_does_nothing_until_configured(
    services: dict[str, dict[str, Any]],
) -> None:
    """A placeholder integration would fail, and log an error, for every alert group."""
    path = host_path(services["alertmanager"], ALERTMANAGER_CONFIG)
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    default = next(r for r in config["receivers"] if r["name"] == config["route"]["receiver"])
    assert set(default) == {"name"}, "the default receiver has an integration"
