"""deploy/kubernetes renders with `kubectl kustomize`, is valid for the Kubernetes API and the
Prometheus Operator's CRDs, and agrees with the worker's own settings and the generated rules.

No cluster is needed: kubectl renders offline, `kubernetes-validate` holds the API's JSON schemas,
and the ServiceMonitor and PrometheusRule are checked against pydantic models generated from the
Prometheus Operator's CRD schemas (`cloudcoil-models-prometheus-operator`, CRDs of v0.80.1),
as docker-compose.yml is checked in test_compose.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from stream.config.kpifile import DEFAULT_CONFIG_PATH, load_kpi_config
from stream.config.options import OPTIONS
from stream.config.secret import customer_secret
from stream.config.settings import Settings
from stream.monitoring.rulefile import render_prometheus_rule
from stream.runtime.process import STOP_DEADLINE_S

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy/kubernetes"
KINDS = {"StatefulSet", "Service", "ServiceMonitor", "PrometheusRule"}
#: The oldest Kubernetes release still validated, and the newest the package knows.
VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
#: What the Secret `cxkpi` would hold (made-up values).
SECRET = {
    "customer-key-secret": "not-a-real-secret-but-long-enough",
    "redis-url": "redis://:not-a-password@redis:6379/0",
    "kafka-sasl-password": "not-a-password",
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, Any]]:
    """`kubectl kustomize deploy/kubernetes`, by kind (one resource of each)."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not installed (Debian package kubectl; ./ops/setup.sh test)"
    result = subprocess.run(
        [kubectl, "kustomize", str(BASE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    resources = [r for r in yaml.safe_load_all(result.stdout) if r]
    by_kind = {r["kind"]: r for r in resources}
    assert len(by_kind) == len(resources), "one resource of each kind"
    return by_kind


def worker(rendered: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (container,) = rendered["StatefulSet"]["spec"]["template"]["spec"]["containers"]
    return container


def pod_environment(container: dict[str, Any], pod_name: str) -> dict[str, str]:
    """The container's environment as the kubelet would give it: the downward API's pod name,
    and the Secret's (made-up) values."""
    env: dict[str, str] = {}
    for item in container["env"]:
        source = item.get("valueFrom")
        if source is None:
            env[item["name"]] = str(item["value"])
        elif "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "metadata.name", item["name"]
            env[item["name"]] = pod_name
        else:
            reference = source["secretKeyRef"]
            assert reference["name"] == "cxkpi", item["name"]
            env[item["name"]] = SECRET[reference["key"]]
    return env


def test_the_base_renders_one_resource_of_each_kind_and_no_secret(
    rendered: dict[str, dict[str, Any]],
) -> None:
    assert set(rendered) == KINDS, "a Secret is never part of the base"
    for resource in rendered.values():
        assert resource["metadata"]["name"] == "cxkpi"
        assert resource["metadata"]["labels"]["app.kubernetes.io/name"] == "cxkpi"


@pytest.mark.parametrize("version", VERSIONS)
def test_the_workloads_are_valid_for_the_kubernetes_api(
    rendered: dict[str, dict[str, Any]], version: str
) -> None:
    """Against the API's schemas, strict: an unknown or misspelt field fails too."""
    for kind in ("StatefulSet", "Service"):
        kubernetes_validate.validate(rendered[kind], version, strict=True)


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PrometheusRule"])
def test_the_operator_resources_are_valid_for_their_crds(
    rendered: dict[str, dict[str, Any]], kind: str
) -> None:
    """The models hold the CRDs' fields and types; they ignore unknown fields, so a round trip
    that loses one (a misspelt field the operator would drop) fails here."""
    # imported here: building the operator's pydantic models takes 1.5 s, which every pytest
    # process would spend at collection
    from cloudcoil.models.prometheus_operator import v1 as operator

    model = getattr(operator, kind)
    resource = rendered[kind]
    assert resource["apiVersion"] == "monitoring.coreos.com/v1"
    parsed = model.model_validate(resource)
    again = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    assert again == resource


def test_the_prometheus_rule_holds_the_rules_of_ops_prometheus() -> None:
    """Both come from one generator (`make monitoring`): the same groups, never drifting."""
    committed = (BASE / "prometheusrule.yaml").read_text(encoding="utf-8")
    config = load_kpi_config(DEFAULT_CONFIG_PATH)
    assert committed == render_prometheus_rule(config, DEFAULT_CONFIG_PATH.name), (
        "deploy/kubernetes/prometheusrule.yaml is stale: run `make monitoring`"
    )
    rule_file = yaml.safe_load((REPO / "ops/prometheus/rules/cxkpi.rules.yml").read_text())
    assert yaml.safe_load(committed)["spec"]["groups"] == rule_file["groups"]


def test_each_pod_passes_the_workers_own_validation_with_its_name_as_instance_id(
    rendered: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # the image's working directory holds cxkpi.toml
    container = worker(rendered)
    env = pod_environment(container, "cxkpi-1")
    unknown = {k for k in env if k.startswith("CXKPI_")} - {o.env for o in OPTIONS}
    assert not unknown, f"not settings of the worker: {sorted(unknown)}"
    settings = Settings.load({}, environ=env)
    assert settings.group_instance_id == "cxkpi-1"
    assert settings.profile == "production" and settings.web_host == "0.0.0.0"
    assert customer_secret(settings) == SECRET["customer-key-secret"].encode()
    assert container["args"] == ["worker"]
    statefulset = rendered["StatefulSet"]["spec"]
    assert statefulset["replicas"] <= settings.partitions, "extra pods would own no partition"


def test_secrets_come_from_the_secret_and_never_from_the_manifests(
    rendered: dict[str, dict[str, Any]],
) -> None:
    env = {item["name"]: item for item in worker(rendered)["env"]}
    secret_envs = {o.env for o in OPTIONS if o.secret}
    assert secret_envs <= set(env), "every secret setting is given from the Secret"
    for name in secret_envs:
        assert "value" not in env[name] and "secretKeyRef" in env[name]["valueFrom"], name
    for name, item in env.items():
        if name not in secret_envs:
            assert "secretKeyRef" not in item.get("valueFrom", {}), f"{name} is no secret"
    text = "".join(p.read_text(encoding="utf-8") for p in BASE.iterdir())
    assert not any(value in text for value in SECRET.values())


def test_the_probes_ask_health_and_ready_on_the_workers_port(
    rendered: dict[str, dict[str, Any]],
) -> None:
    container = worker(rendered)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = pod_environment(container, "cxkpi-0")
    assert ports == {"http": int(env["CXKPI_WEB_PORT"])}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}


def test_the_grace_period_covers_the_workers_stop(rendered: dict[str, dict[str, Any]]) -> None:
    """A worker ends within STOP_DEADLINE_S of SIGTERM (its last flush included): Kubernetes'
    SIGKILL must come later, and not so late that a hung pod blocks a rollout for long."""
    spec = rendered["StatefulSet"]["spec"]["template"]["spec"]
    assert STOP_DEADLINE_S < spec["terminationGracePeriodSeconds"] <= 30


def test_resources_and_a_writable_scratch_folder(rendered: dict[str, dict[str, Any]]) -> None:
    container = worker(rendered)
    resources = container["resources"]
    assert set(resources) == {"requests", "limits"}
    for key in ("cpu", "memory"):
        assert key in resources["requests"] and key in resources["limits"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    data_dir = pod_environment(container, "cxkpi-0")["CXKPI_DATA_DIR"]
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    assert any(Path(data_dir).is_relative_to(m) for m in mounts), "Faust's scratch files"


def test_the_service_monitor_scrapes_the_workers_metrics(
    rendered: dict[str, dict[str, Any]],
) -> None:
    service, monitor = rendered["Service"], rendered["ServiceMonitor"]
    statefulset = rendered["StatefulSet"]
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None", "the StatefulSet's governing service"
    assert service["spec"]["selector"].items() <= pod_labels.items()
    selected = monitor["spec"]["selector"]["matchLabels"]
    assert selected.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    (port,) = service["spec"]["ports"]
    assert endpoint["port"] == port["name"] and port["targetPort"] == "http"
    assert endpoint["path"] == "/metrics"
