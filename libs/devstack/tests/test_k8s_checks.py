"""The rendered overlays have every property the deployment promises, and the checker
notices when one goes missing."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from devstack import k8s_checks
from devstack.k8s_checks import check_overlay, medstation_processes
from devstack.k8s_render import Manifest, pod_spec, render_overlay
from devstack.services import SERVICES

Manifests = list[Manifest]


@pytest.fixture(scope="module")
def dev() -> Manifests:
    return render_overlay("dev")


@pytest.fixture(scope="module")
def prod() -> Manifests:
    return render_overlay("prod")


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_overlays_have_no_problems(overlay: str, dev: Manifests, prod: Manifests) -> None:
    manifests = dev if overlay == "dev" else prod
    assert check_overlay(overlay, manifests) == []


def _find(manifests: Manifests, kind: str, name: str) -> Manifest:
    return next(m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name)


def _container(manifests: Manifests, name: str) -> dict[str, Any]:
    spec = pod_spec(_find(manifests, "Deployment", name))
    assert spec is not None
    container: dict[str, Any] = spec["containers"][0]
    return container


# --- direct assertions on the render, independent of the checker -------------------------


def test_each_service_probes_grpc_on_its_numeric_port(dev: Manifests) -> None:
    for process in medstation_processes():
        container = _container(dev, process.name)
        startup, ready, live = (
            container[p]["grpc"] for p in ("startupProbe", "readinessProbe", "livenessProbe")
        )
        assert startup["port"] == ready["port"] == live["port"] == process.grpc_port
        assert ready.get("service", "") == (process.readiness_service or "")
        assert "service" not in live


def test_each_service_has_a_database_of_its_own(dev: Manifests) -> None:
    urls = {}
    for service in SERVICES:
        env = {e["name"]: e for e in _container(dev, service.key)["env"]}
        reference = env["MEDSTATION_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        secret = _find(dev, "Secret", reference["name"])
        urls[service.key] = base64.b64decode(secret["data"][reference["key"]]).decode()
        assert f"@{service.key}-db:5432/{service.database}" in urls[service.key]
    assert len(set(urls.values())) == len(SERVICES)
    databases = [m for m in dev if m["kind"] == "StatefulSet"]
    assert sorted(m["metadata"]["name"] for m in databases) == sorted(
        f"{s.key}-db" for s in SERVICES
    )


def test_no_deployment_carries_a_secret_value(dev: Manifests, prod: Manifests) -> None:
    for manifests in (dev, prod):
        for deployment in (m for m in manifests if m["kind"] == "Deployment"):
            for container in (pod_spec(deployment) or {})["containers"]:
                for variable in container.get("env") or []:
                    if "SECRET" in variable["name"] or "PASSWORD" in variable["name"]:
                        assert "secretKeyRef" in variable["valueFrom"], variable


def test_prod_ships_no_secrets_and_pins_images(prod: Manifests) -> None:
    assert not [m for m in prod if m["kind"] == "Secret"]
    assert not [m for m in prod if m["kind"] == "StatefulSet"], "managed databases in prod"
    for deployment in (m for m in prod if m["kind"] == "Deployment"):
        for container in (pod_spec(deployment) or {})["containers"]:
            assert "@sha256:" in container["image"]


def test_shutdown_fits_the_grace_period(dev: Manifests) -> None:
    for service in SERVICES:
        spec = pod_spec(_find(dev, "Deployment", service.key))
        assert spec is not None
        assert spec["terminationGracePeriodSeconds"] > 2 + 10


# --- the checker reports what is taken away ------------------------------------------------

Mutation = Callable[[Manifests], None]


def _in_container(name: str, change: Callable[[dict[str, Any]], object]) -> Mutation:
    def mutate(manifests: Manifests) -> None:
        change(_container(manifests, name))

    return mutate


def _in_pod(name: str, change: Callable[[dict[str, Any]], object]) -> Mutation:
    def mutate(manifests: Manifests) -> None:
        spec = pod_spec(_find(manifests, "Deployment", name))
        assert spec is not None
        change(spec)

    return mutate


def _edit(kind: str, name: str, change: Callable[[Manifest], object]) -> Mutation:
    def mutate(manifests: Manifests) -> None:
        change(_find(manifests, kind, name))

    return mutate


def _both(first: Mutation, second: Mutation) -> Mutation:
    def mutate(manifests: Manifests) -> None:
        first(manifests)
        second(manifests)

    return mutate


def _drop(kind: str, name: str) -> Mutation:
    def mutate(manifests: Manifests) -> None:
        manifests.remove(_find(manifests, kind, name))

    return mutate


def _chat_reaches_for_the_summary_database(manifests: Manifests) -> None:
    egress = _find(manifests, "NetworkPolicy", "chat-to-database")["spec"]["egress"][0]
    egress["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] = "summary-db"
    ingress = _find(manifests, "NetworkPolicy", "summary-db")["spec"]["ingress"][0]
    ingress["from"][0]["podSelector"]["matchExpressions"][0]["values"].append("chat")


def _user_may_call_anyone_who_accepts_anyone(manifests: Manifests) -> None:
    user = _find(manifests, "NetworkPolicy", "user-to-database")["spec"]
    user["egress"].append({"to": [{"podSelector": {}}]})
    patient = _find(manifests, "NetworkPolicy", "patient-record")["spec"]
    del patient["ingress"][0]["from"]


def _chat_uses_the_summary_database_secret(manifests: Manifests) -> None:
    summary = _container(manifests, "summary")["env"][0]["valueFrom"]["secretKeyRef"]
    _container(manifests, "chat")["env"][0]["valueFrom"]["secretKeyRef"]["name"] = summary["name"]


def _plaintext_page_secret(container: dict[str, Any]) -> None:
    for variable in container["env"]:
        if variable["name"] == "MEDSTATION_PAGE_TOKEN_SECRET":
            variable.pop("valueFrom")
            variable["value"] = "hunter2"


def _first(items: list[dict[str, Any]]) -> dict[str, Any]:
    return items[0]


MUTATIONS: dict[str, tuple[Mutation, str]] = {
    "readiness probe removed": (
        _in_container("user", lambda c: c.pop("readinessProbe")),
        "Deployment/user: no readinessProbe",
    ),
    "liveness probe removed": (
        _in_container("summary-worker", lambda c: c.pop("livenessProbe")),
        "Deployment/summary-worker: no livenessProbe",
    ),
    "startup probe removed": (
        _in_container("chat", lambda c: c.pop("startupProbe")),
        "Deployment/chat: no startupProbe",
    ),
    "readiness checks the wrong service": (
        _in_container("patient-record", lambda c: c["readinessProbe"]["grpc"].pop("service")),
        "Deployment/patient-record: readinessProbe must check service "
        "'medstation.patient.v1.PatientRecordService'",
    ),
    "probe on a named port": (
        _in_container("summary", lambda c: c["livenessProbe"]["grpc"].update(port="grpc")),
        "Deployment/summary: livenessProbe must use the numeric gRPC port 50053",
    ),
    "probe over HTTP instead of gRPC": (
        _in_container(
            "user",
            lambda c: c.update(livenessProbe={"tcpSocket": {"port": 50051}}),
        ),
        "Deployment/user: livenessProbe is not a native gRPC probe",
    ),
    "memory limit removed": (
        _in_container("chat", lambda c: c["resources"]["limits"].pop("memory")),
        "Deployment/chat container chat: no memory limits",
    ),
    "requests removed from the migration": (
        _in_pod("user", lambda s: _first(s["initContainers"])["resources"].pop("requests")),
        "Deployment/user init container migrate: no cpu requests",
    ),
    "writable root filesystem": (
        _in_container(
            "gateway", lambda c: c["securityContext"].update(readOnlyRootFilesystem=False)
        ),
        "Deployment/gateway container envoy: readOnlyRootFilesystem is not true",
    ),
    "privilege escalation allowed": (
        _in_container("user", lambda c: c["securityContext"].pop("allowPrivilegeEscalation")),
        "Deployment/user container user: allowPrivilegeEscalation is not false",
    ),
    "capabilities kept": (
        _in_container("chat", lambda c: c["securityContext"].pop("capabilities")),
        "Deployment/chat container chat: capabilities do not drop ALL",
    ),
    "seccomp profile removed": (
        _in_pod("summary", lambda s: s["securityContext"].pop("seccompProfile")),
        "Deployment/summary: pod securityContext.seccompProfile is not RuntimeDefault",
    ),
    "may run as root": (
        _in_pod("patient-record", lambda s: s["securityContext"].pop("runAsNonRoot")),
        "Deployment/patient-record: pod securityContext.runAsNonRoot is not true",
    ),
    "no fsGroup": (
        _in_pod("user", lambda s: s["securityContext"].pop("fsGroup")),
        "Deployment/user: pod securityContext.fsGroup is not set",
    ),
    "service account token mounted": (
        _both(
            _in_pod("user", lambda s: s.pop("automountServiceAccountToken")),
            _edit("ServiceAccount", "user", lambda a: a.pop("automountServiceAccountToken")),
        ),
        "Deployment/user: the service account token is mounted",
    ),
    "no /tmp": (
        _in_container("chat", lambda c: c.pop("volumeMounts")),
        "Deployment/chat container chat: /tmp is not a writable emptyDir",
    ),
    "grace period too short": (
        _in_pod("user", lambda s: s.update(terminationGracePeriodSeconds=12)),
        "Deployment/user: terminationGracePeriodSeconds 12 must exceed "
        "SHUTDOWN_DRAIN_SECONDS + SHUTDOWN_GRACE_SECONDS = 12 s",
    ),
    "chat's reply drain forgotten": (
        _in_pod("chat", lambda s: s.update(terminationGracePeriodSeconds=20)),
        "Deployment/chat: terminationGracePeriodSeconds 20 must exceed",
    ),
    "secret as a literal": (
        _in_container("patient-record", _plaintext_page_secret),
        "MEDSTATION_PAGE_TOKEN_SECRET is a literal; use a secretKeyRef",
    ),
    "config not from a ConfigMap": (
        _in_container("user", lambda c: c.pop("envFrom")),
        "Deployment/user: its configuration must come from a ConfigMap (envFrom)",
    ),
    "no migration before serving": (
        _in_pod("chat", lambda s: s.pop("initContainers")),
        "Deployment/chat: no init container runs `python -m chat migrate`",
    ),
    "h2c dropped from a Service": (
        _edit("Service", "user", lambda s: s["spec"]["ports"][0].pop("appProtocol")),
        "Service/user: port grpc needs appProtocol kubernetes.io/h2c",
    ),
    "Service not headless": (
        _edit("Service", "chat", lambda s: s["spec"].pop("clusterIP")),
        "Service/chat: must be headless",
    ),
    "worker autoscaler removed": (
        _drop("HorizontalPodAutoscaler", "summary-worker"),
        "Deployment/summary-worker: no autoscaling/v2 HorizontalPodAutoscaler",
    ),
    "disruption budget removed": (
        _drop("PodDisruptionBudget", "gateway"),
        "Deployment/gateway: no PodDisruptionBudget",
    ),
    "two services share a database": (
        _chat_uses_the_summary_database_secret,
        "Deployment/chat: shares its database URL secret with summary",
    ),
    "default deny removed": (
        _drop("NetworkPolicy", "default-deny-all"),
        "no default-deny NetworkPolicy",
    ),
    "a service loses its database": (
        _drop("NetworkPolicy", "chat-to-database"),
        "NetworkPolicy: chat -> chat-db:5432/TCP is intended but denied",
    ),
    "a service reaches another's database": (
        _chat_reaches_for_the_summary_database,
        "NetworkPolicy: chat -> summary-db:5432/TCP is allowed but not intended",
    ),
    "a service calls one it must not": (
        _user_may_call_anyone_who_accepts_anyone,
        "NetworkPolicy: user -> patient-record:50052/TCP is allowed but not intended",
    ),
    "the gateway loses a route": (
        _edit("NetworkPolicy", "gateway", lambda p: p["spec"]["egress"].pop(3)),
        "NetworkPolicy: gateway -> chat:50054/TCP is intended but denied",
    ),
    "Prometheus shut out": (
        _edit("NetworkPolicy", "summary-worker", lambda p: p["spec"].pop("ingress")),
        "NetworkPolicy: prometheus -> summary-worker:9113/TCP is intended but denied",
    ),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_the_checker_reports_a_removed_property(case: str, dev: Manifests) -> None:
    mutate, expected = MUTATIONS[case]
    manifests = copy.deepcopy(dev)
    mutate(manifests)
    problems = check_overlay("dev", manifests)
    assert any(expected in problem for problem in problems), problems


def test_prod_requires_digests_spreading_and_managed_databases(prod: Manifests) -> None:
    manifests = copy.deepcopy(prod)
    _container(manifests, "user")["image"] = "registry.example.com/medstation/user:0.1.0"
    spec = pod_spec(_find(manifests, "Deployment", "chat"))
    assert spec is not None
    spec.pop("topologySpreadConstraints")
    _find(manifests, "NetworkPolicy", "summary-to-database")["spec"]["egress"][0]["to"] = [
        {"ipBlock": {"cidr": "10.20.0.0/16"}}
    ]
    problems = check_overlay("prod", manifests)
    assert any("user:0.1.0' is not pinned by digest" in p for p in problems), problems
    assert any(
        "Deployment/chat: pods are not spread over kubernetes.io/hostname" in p for p in problems
    )
    # Its network now covers the user database's address too.
    assert any("summary -> user-db:5432/TCP is allowed but not intended" in p for p in problems)


def test_prod_needs_at_least_three_pods(prod: Manifests) -> None:
    manifests = copy.deepcopy(prod)
    _find(manifests, "HorizontalPodAutoscaler", "patient-record")["spec"]["minReplicas"] = 1
    problems = k8s_checks.scaling_problems(manifests, min_replicas=3)
    assert problems == ["Deployment/patient-record: its HPA must run at least 3 pods"]


def test_production_traces_one_request_in_ten_at_the_gateway_and_in_the_services(
    prod: Manifests,
) -> None:
    """Services sample parent-based, so the gateway's share is the trace rate; the
    services' own ratio must match it for calls that arrive untraced."""
    config = next(
        m
        for m in prod
        if m["kind"] == "ConfigMap" and m["metadata"]["name"].startswith("medstation-config-")
    )
    assert config["data"]["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    ratio = float(config["data"]["OTEL_TRACES_SAMPLER_ARG"])
    gateway = next(
        m
        for m in prod
        if m["kind"] == "ConfigMap" and m["metadata"]["name"].startswith("gateway-config-")
    )
    envoy = yaml.safe_load(gateway["data"]["envoy.yaml"])
    managers = [
        chain_filter["typed_config"]
        for listener in envoy["static_resources"]["listeners"]
        for chain in listener["filter_chains"]
        for chain_filter in chain["filters"]
        if chain_filter["name"] == "envoy.filters.network.http_connection_manager"
    ]
    percents = {manager["tracing"]["random_sampling"]["value"] for manager in managers}
    assert percents == {ratio * 100} == {10}
