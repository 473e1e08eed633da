"""What MedStation's rendered manifests must say, checked property by property.

Each check takes the rendered objects of one overlay and returns one line per problem
(empty: all good), naming the object and what is wrong, so a test can assert both that
the real overlays pass and that a manifest with a property removed is reported.

The expectations come from the service registry (devstack.services: names, packages,
ports, proto services, databases) and from the architecture (who calls whom: GRPC_CALLS).
"""

from __future__ import annotations

import base64
import ipaddress
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from devstack.k8s_policy import Endpoint, PolicySet, Port, selector_matches, workload_endpoints
from devstack.k8s_render import Manifest, pod_spec
from devstack.services import SERVICES

GRPC_APP_PROTOCOL = "kubernetes.io/h2c"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")

# Environment variables that must never carry a literal value in a manifest.
_SECRET_NAME = re.compile(r"(PASSWORD|SECRET|PASSPHRASE|API_KEY|TOKEN|DATABASE_URL|REDIS_URL)$")
_URL_WITH_PASSWORD = re.compile(r"://[^/@\s:]+:[^/@\s]+@")


@dataclass(frozen=True)
class MedstationProcess:
    """A process of ours that Kubernetes runs: a service or a worker of one."""

    name: str  # Deployment name = registry key
    service: str  # the service it belongs to (its database, secrets, image)
    package: str
    command: tuple[str, ...]
    grpc_port: int
    metrics_port: int
    readiness_service: str | None  # proto service name; None for a worker ("")
    database: str
    role: str

    @property
    def secret(self) -> str:
        return f"{self.service}-secrets"

    @property
    def database_host(self) -> str:
        return f"{self.service}-db"


def medstation_processes() -> list[MedstationProcess]:
    processes: list[MedstationProcess] = []
    for service in SERVICES:
        processes.append(
            MedstationProcess(
                service.key,
                service.key,
                service.package,
                ("python", "-m", service.package),
                service.grpc_port,
                service.metrics_port,
                service.proto_service,
                service.database,
                service.role,
            )
        )
        for worker in service.workers:
            processes.append(
                MedstationProcess(
                    worker.key,
                    service.key,
                    service.package,
                    ("python", "-m", service.package, worker.command),
                    worker.grpc_port,
                    worker.metrics_port,
                    None,
                    service.database,
                    service.role,
                )
            )
    return processes


# What a process's shutdown can take after SIGTERM, summed from its settings (with their
# defaults): its pod's terminationGracePeriodSeconds must be longer.
_DEFAULT_SHUTDOWN = (
    ("MEDSTATION_SHUTDOWN_DRAIN_SECONDS", 2.0),  # NOT_SERVING while balancers notice
    ("MEDSTATION_SHUTDOWN_GRACE_SECONDS", 10.0),  # in-flight calls finish
)
SHUTDOWN_BUDGET: dict[str, tuple[tuple[str, float], ...]] = {
    # Then replies still being written are given time to be stored.
    "chat": (*_DEFAULT_SHUTDOWN, ("MEDSTATION_REPLY_DRAIN_SECONDS", 10.0)),
    # No drain (nothing routes to it); the health server's grace, then the jobs in flight
    # get the same grace.
    "summary-worker": (
        ("MEDSTATION_SHUTDOWN_GRACE_SECONDS", 10.0),
        ("MEDSTATION_SHUTDOWN_GRACE_SECONDS", 10.0),
    ),
}

# The architecture: who may call whom over gRPC (DESIGN.md). Everything else is denied.
GRPC_CALLS: dict[str, tuple[str, ...]] = {
    "gateway": ("user", "patient-record", "summary", "chat"),
    "patient-record": ("user",),  # JWKS
    "summary": ("user", "patient-record"),
    "chat": ("user", "patient-record"),
    # Reads charts with the job creator's token; verifies no token itself.
    "summary-worker": ("patient-record",),
}
REDIS_CLIENTS = ("user", "patient-record", "summary", "summary-worker", "chat")
LANGUAGE_MODEL_CLIENTS = ("summary", "summary-worker", "chat")
POSTGRES_PORT = 5432
REDIS_PORT = 6379
OTLP_PORT = 4317
GATEWAY_PORT = 8080


@dataclass(frozen=True)
class OverlayExpectations:
    min_replicas: int  # HPA minimum of every service, worker and the gateway
    images_pinned_by_digest: bool
    in_cluster_data: bool  # PostgreSQL StatefulSets and Redis in the namespace
    secrets_in_overlay: bool  # every non-optional secretKeyRef resolves in the render
    spread_over_nodes: bool
    traces_leave_namespace: bool  # the collector exports to a backend elsewhere


EXPECTATIONS = {
    "dev": OverlayExpectations(1, False, True, True, False, False),
    "prod": OverlayExpectations(3, True, False, False, True, True),
}


def check_overlay(overlay: str, manifests: Sequence[Manifest]) -> list[str]:
    """Every check, with the overlay's expectations."""
    from devstack.gateway_config import repo_root
    from devstack.k8s_observability import exported_metric_names, observability_problems

    expected = EXPECTATIONS[overlay]
    return [
        *workload_security_problems(manifests),
        *process_problems(manifests),
        *shutdown_problems(manifests),
        *configuration_problems(manifests, secrets_in_overlay=expected.secrets_in_overlay),
        *service_problems(manifests),
        *scaling_problems(manifests, min_replicas=expected.min_replicas),
        *database_problems(manifests, in_cluster=expected.in_cluster_data),
        *image_problems(manifests, pinned_by_digest=expected.images_pinned_by_digest),
        *(spread_problems(manifests) if expected.spread_over_nodes else []),
        *network_problems(manifests, traces_leave_namespace=expected.traces_leave_namespace),
        *observability_problems(manifests, exported_metric_names(repo_root())),
    ]


# --- helpers -----------------------------------------------------------------------------


def _named(manifests: Sequence[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m.get("kind") == kind}


def _workloads(manifests: Sequence[Manifest]) -> Iterator[Manifest]:
    return (m for m in manifests if m.get("kind") in WORKLOAD_KINDS)


def _label(manifest: Manifest) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for container in spec.get("initContainers") or []:
        yield f"init container {container['name']}", container
    for container in spec.get("containers") or []:
        yield f"container {container['name']}", container


def _main_container(manifest: Manifest) -> dict[str, Any] | None:
    spec = pod_spec(manifest) or {}
    containers = spec.get("containers") or []
    name = manifest["metadata"]["name"]
    return next((c for c in containers if c["name"] == name), containers[0] if containers else None)


def _pod_labels(manifest: Manifest) -> dict[str, str]:
    labels = manifest["spec"]["template"].get("metadata", {}).get("labels") or {}
    return dict(labels)


def resolved_env(manifests: Sequence[Manifest], container: Mapping[str, Any]) -> dict[str, Any]:
    """A container's environment as Kubernetes builds it: envFrom in order, then env.

    Values: ("value", text) for literals and ConfigMap entries, ("secret", name, key) for
    secretKeyRef, ("other", description) for the rest.
    """
    config_maps = _named(manifests, "ConfigMap")
    environment: dict[str, Any] = {}
    for source in container.get("envFrom") or []:
        reference = source.get("configMapRef")
        if reference is not None and reference["name"] in config_maps:
            for key, value in (config_maps[reference["name"]].get("data") or {}).items():
                environment[key] = ("value", str(value))
    for variable in container.get("env") or []:
        if "value" in variable:
            environment[variable["name"]] = ("value", str(variable["value"]))
            continue
        source = variable.get("valueFrom") or {}
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            environment[variable["name"]] = ("secret", ref["name"], ref["key"])
        else:
            environment[variable["name"]] = ("other", str(source))
    return environment


def _env_number(environment: Mapping[str, Any], name: str, default: float) -> float:
    value = environment.get(name)
    if value is None or value[0] != "value":
        return default
    return float(value[1])


# --- security ----------------------------------------------------------------------------


def workload_security_problems(manifests: Sequence[Manifest]) -> list[str]:
    """Every workload: non-root, seccomp, no token, locked-down containers with limits."""
    problems: list[str] = []
    accounts = _named(manifests, "ServiceAccount")
    for workload in _workloads(manifests):
        label = _label(workload)
        spec = pod_spec(workload) or {}
        pod = spec.get("securityContext") or {}
        if pod.get("runAsNonRoot") is not True:
            problems.append(f"{label}: pod securityContext.runAsNonRoot is not true")
        if not isinstance(pod.get("runAsUser"), int) or pod["runAsUser"] == 0:
            problems.append(f"{label}: pod securityContext.runAsUser must be a non-zero UID")
        if not isinstance(pod.get("fsGroup"), int):
            problems.append(f"{label}: pod securityContext.fsGroup is not set")
        if (pod.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{label}: pod securityContext.seccompProfile is not RuntimeDefault")
        account = accounts.get(spec.get("serviceAccountName", "default"), {})
        if spec.get("automountServiceAccountToken") is not False and (
            account.get("automountServiceAccountToken") is not False
        ):
            problems.append(f"{label}: the service account token is mounted")
        tmp_volumes = {v["name"] for v in spec.get("volumes") or [] if "emptyDir" in v}
        for where, container in _containers(spec):
            problems += _container_problems(f"{label} {where}", container, tmp_volumes)
        for container in spec.get("containers") or []:
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in container:
                    problems.append(f"{label} container {container['name']}: no {probe}")
    return problems


def _container_problems(where: str, container: Mapping[str, Any], scratch: set[str]) -> list[str]:
    problems: list[str] = []
    security = container.get("securityContext") or {}
    if security.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: readOnlyRootFilesystem is not true")
    if security.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: allowPrivilegeEscalation is not false")
    if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
        problems.append(f"{where}: capabilities do not drop ALL")
    if security.get("privileged") or security.get("runAsUser") == 0:
        problems.append(f"{where}: runs privileged or as root")
    resources = container.get("resources") or {}
    for section in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in (resources.get(section) or {}):
                problems.append(f"{where}: no {resource} {section}")
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts") or []}
    if mounts.get("/tmp") not in scratch:  # noqa: S108 - checks a mount, creates nothing
        problems.append(f"{where}: /tmp is not a writable emptyDir (the root is read-only)")
    return problems


# --- our processes: probes, ports, commands, migrations ---------------------------------


def process_problems(manifests: Sequence[Manifest]) -> list[str]:
    """Each service and worker: its Deployment, gRPC probes, ports, command, migration."""
    problems: list[str] = []
    deployments = _named(manifests, "Deployment")
    for process in medstation_processes():
        deployment = deployments.get(process.name)
        if deployment is None:
            problems.append(f"Deployment/{process.name} is missing")
            continue
        label = _label(deployment)
        container = _main_container(deployment)
        if container is None:
            problems.append(f"{label}: no containers")
            continue
        problems += _probe_problems(label, container, process)
        ports = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
        for port_name, number in (("grpc", process.grpc_port), ("metrics", process.metrics_port)):
            if ports.get(port_name) != number:
                problems.append(f"{label}: container port {port_name!r} must be {number}")
        if tuple(container.get("command") or ()) != process.command:
            problems.append(f"{label}: command must be {shlex.join(process.command)}")
        environment = resolved_env(manifests, container)
        for variable, wanted in (
            ("MEDSTATION_GRPC_HOST", "0.0.0.0"),  # probes hit the pod IP
            ("MEDSTATION_GRPC_PORT", str(process.grpc_port)),
            ("MEDSTATION_METRICS_PORT", str(process.metrics_port)),
            ("OTEL_SERVICE_NAME", process.name),
        ):
            if environment.get(variable) != ("value", wanted):
                problems.append(f"{label}: {variable} must be {wanted} (ConfigMap)")
        problems += _migration_problems(label, deployment, container, process)
    return problems


def _probe_problems(
    label: str, container: Mapping[str, Any], process: MedstationProcess
) -> list[str]:
    problems: list[str] = []
    for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(probe_name)
        if probe is None:
            problems.append(f"{label}: no {probe_name}")
            continue
        grpc = probe.get("grpc")
        if grpc is None:
            problems.append(f"{label}: {probe_name} is not a native gRPC probe")
            continue
        if grpc.get("port") != process.grpc_port or not isinstance(grpc.get("port"), int):
            problems.append(
                f"{label}: {probe_name} must use the numeric gRPC port {process.grpc_port}"
            )
        service = grpc.get("service", "")
        if probe_name == "readinessProbe":
            wanted = process.readiness_service or ""
            if service != wanted:
                problems.append(f"{label}: readinessProbe must check service {wanted!r}")
        elif service:
            problems.append(f'{label}: {probe_name} must check the server as a whole ("")')
    return problems


def _migration_problems(
    label: str, deployment: Manifest, container: Mapping[str, Any], process: MedstationProcess
) -> list[str]:
    spec = pod_spec(deployment) or {}
    migrate = ("python", "-m", process.package, "migrate")
    for init in spec.get("initContainers") or []:
        if tuple(init.get("command") or ()) == migrate:
            if init.get("image") != container.get("image"):
                return [f"{label}: the migration must run the serving image"]
            return []
    return [f"{label}: no init container runs `{shlex.join(migrate)}` before it serves"]


def shutdown_problems(manifests: Sequence[Manifest]) -> list[str]:
    """terminationGracePeriodSeconds outlasts what the process's shutdown may take."""
    problems: list[str] = []
    deployments = _named(manifests, "Deployment")
    for process in medstation_processes():
        deployment = deployments.get(process.name)
        container = _main_container(deployment) if deployment else None
        if deployment is None or container is None:
            continue
        environment = resolved_env(manifests, container)
        budget = SHUTDOWN_BUDGET.get(process.name, _DEFAULT_SHUTDOWN)
        needed = sum(_env_number(environment, name, default) for name, default in budget)
        period = (pod_spec(deployment) or {}).get("terminationGracePeriodSeconds", 30)
        if period <= needed:
            parts = " + ".join(name.removeprefix("MEDSTATION_") for name, _ in budget)
            problems.append(
                f"{_label(deployment)}: terminationGracePeriodSeconds {period} must exceed "
                f"{parts} = {needed:g} s"
            )
    return problems


# --- configuration and secrets -------------------------------------------------------------


def configuration_problems(manifests: Sequence[Manifest], *, secrets_in_overlay: bool) -> list[str]:
    """Config from ConfigMaps (envFrom), secrets only through secretKeyRef."""
    problems: list[str] = []
    config_maps = _named(manifests, "ConfigMap")
    secrets = _named(manifests, "Secret")
    our = {p.name: p for p in medstation_processes()}
    for workload in _workloads(manifests):
        label = _label(workload)
        for where, container in _containers(pod_spec(workload) or {}):
            for source in container.get("envFrom") or []:
                if "secretRef" in source:
                    problems.append(f"{label} {where}: envFrom a Secret; name each secretKeyRef")
                reference = source.get("configMapRef")
                if reference and reference["name"] not in config_maps:
                    problems.append(f"{label} {where}: ConfigMap {reference['name']} is missing")
            for variable in container.get("env") or []:
                name = variable["name"]
                value = str(variable.get("value", ""))
                if _SECRET_NAME.search(name) and "value" in variable:
                    problems.append(f"{label} {where}: {name} is a literal; use a secretKeyRef")
                elif _URL_WITH_PASSWORD.search(value):
                    problems.append(f"{label} {where}: {name} carries a password in plain text")
                ref = (variable.get("valueFrom") or {}).get("secretKeyRef")
                if ref and secrets_in_overlay and not ref.get("optional"):
                    data = (secrets.get(ref["name"]) or {}).get("data") or {}
                    if ref["key"] not in data:
                        problems.append(
                            f"{label} {where}: Secret {ref['name']} has no key {ref['key']}"
                        )
        if workload["metadata"]["name"] in our:
            container = _main_container(workload) or {}
            if not any("configMapRef" in s for s in container.get("envFrom") or []):
                problems.append(f"{label}: its configuration must come from a ConfigMap (envFrom)")
            environment = resolved_env(manifests, container)
            for variable in ("MEDSTATION_DATABASE_URL", "MEDSTATION_REDIS_URL"):
                if (environment.get(variable) or ("",))[0] != "secret":
                    problems.append(f"{label}: {variable} must come from a secretKeyRef")
    for name, config_map in config_maps.items():
        for key, value in (config_map.get("data") or {}).items():
            if _SECRET_NAME.search(key) or _URL_WITH_PASSWORD.search(str(value)):
                problems.append(f"ConfigMap/{name}: {key} looks secret; move it to a Secret")
    return problems


def database_problems(manifests: Sequence[Manifest], *, in_cluster: bool) -> list[str]:
    """Each service has a database of its own, reached by its own Service name."""
    problems: list[str] = []
    deployments = _named(manifests, "Deployment")
    services = _named(manifests, "Service")
    statefulsets = _named(manifests, "StatefulSet")
    secrets = _named(manifests, "Secret")
    owner_of_secret: dict[tuple[str, str], str] = {}
    for process in medstation_processes():
        deployment = deployments.get(process.name)
        container = _main_container(deployment) if deployment else None
        if container is None or deployment is None:
            continue
        label = _label(deployment)
        source = resolved_env(manifests, container).get("MEDSTATION_DATABASE_URL")
        if source is None or source[0] != "secret":
            continue  # configuration_problems reports it
        reference = (source[1], source[2])
        previous = owner_of_secret.setdefault(reference, process.service)
        if previous != process.service:
            problems.append(f"{label}: shares its database URL secret with {previous}")
        host_service = services.get(process.database_host)
        if host_service is None:
            problems.append(f"{label}: no Service {process.database_host} for its database")
        elif not in_cluster and host_service["spec"].get("type") != "ExternalName":
            problems.append(f"Service/{process.database_host}: must name the managed database")
        if in_cluster:
            problems += _in_cluster_database_problems(
                label,
                process,
                statefulsets.get(process.database_host),
                secrets.get(source[1]),
                source[2],
            )
    external = [
        s["spec"]["externalName"]
        for s in services.values()
        if s["spec"].get("type") == "ExternalName"
    ]
    if len(set(external)) != len(external):
        problems.append(f"ExternalName Services share a host: {sorted(external)}")
    return problems


def _in_cluster_database_problems(
    label: str,
    process: MedstationProcess,
    statefulset: Manifest | None,
    secret: Manifest | None,
    key: str,
) -> list[str]:
    problems: list[str] = []
    if statefulset is None:
        return [f"{label}: no StatefulSet {process.database_host}"]
    if not statefulset["spec"].get("volumeClaimTemplates"):
        problems.append(f"{_label(statefulset)}: keeps its data in no volumeClaimTemplate")
    database_env = {
        e["name"]: e.get("value") for e in (_main_container(statefulset) or {}).get("env") or []
    }
    if database_env.get("MEDSTATION_DB_NAME") != process.database:
        problems.append(f"{_label(statefulset)}: must create database {process.database}")
    if secret is not None and key in (secret.get("data") or {}):
        url = urlsplit(base64.b64decode(secret["data"][key]).decode())
        if url.scheme != "postgresql+psycopg":
            problems.append(f"{label}: database URL scheme must be postgresql+psycopg")
        if url.hostname != process.database_host or url.path.lstrip("/") != process.database:
            problems.append(
                f"{label}: database URL must name {process.database_host}/{process.database}"
            )
        if url.username != process.role:
            problems.append(f"{label}: database URL must log in as role {process.role}")
    return problems


# --- Services, scaling, images, spreading ------------------------------------------------


def service_problems(manifests: Sequence[Manifest]) -> list[str]:
    """gRPC Service ports are HTTP/2 cleartext; each service has a headless Service."""
    problems: list[str] = []
    services = _named(manifests, "Service")
    deployments = _named(manifests, "Deployment")
    for name, declared in services.items():
        for port in declared["spec"].get("ports") or []:
            if str(port.get("name", "")).startswith("grpc") and (
                port.get("appProtocol") != GRPC_APP_PROTOCOL
            ):
                problems.append(
                    f"Service/{name}: port {port.get('name')} needs appProtocol {GRPC_APP_PROTOCOL}"
                )
    for process in medstation_processes():
        if process.readiness_service is None:
            continue  # a worker serves no API
        service = services.get(process.name)
        if service is None:
            problems.append(f"Service/{process.name} is missing")
            continue
        ports = {p.get("name"): p for p in service["spec"].get("ports") or []}
        grpc = ports.get("grpc")
        if grpc is None or grpc.get("port") != process.grpc_port:
            problems.append(f"Service/{process.name}: port grpc must be {process.grpc_port}")
        if "metrics" not in ports:
            problems.append(f"Service/{process.name}: no metrics port")
        if service["spec"].get("clusterIP") != "None":
            problems.append(
                f"Service/{process.name}: must be headless so clients balance over pods"
            )
        deployment = deployments.get(process.name)
        if deployment and not selector_matches(
            {"matchLabels": service["spec"].get("selector") or {}}, _pod_labels(deployment)
        ):
            problems.append(f"Service/{process.name}: selects none of its Deployment's pods")
    return problems


def scaling_problems(manifests: Sequence[Manifest], *, min_replicas: int) -> list[str]:
    """Each service, worker and the gateway: its own HPA (CPU) and PodDisruptionBudget."""
    problems: list[str] = []
    deployments = _named(manifests, "Deployment")
    autoscalers = {
        h["spec"]["scaleTargetRef"]["name"]: h
        for h in manifests
        if h.get("kind") == "HorizontalPodAutoscaler"
    }
    budgets = [m for m in manifests if m.get("kind") == "PodDisruptionBudget"]
    for name in [p.name for p in medstation_processes()] + ["gateway"]:
        deployment = deployments.get(name)
        if deployment is None:
            problems.append(f"Deployment/{name} is missing")
            continue
        label = _label(deployment)
        autoscaler = autoscalers.get(name)
        if autoscaler is None or autoscaler.get("apiVersion") != "autoscaling/v2":
            problems.append(f"{label}: no autoscaling/v2 HorizontalPodAutoscaler")
        else:
            spec = autoscaler["spec"]
            resources = [
                m["resource"]["name"] for m in spec.get("metrics") or [] if m["type"] == "Resource"
            ]
            if "cpu" not in resources:
                problems.append(f"{label}: its HPA does not scale on CPU")
            if spec.get("minReplicas") != min_replicas or spec["maxReplicas"] < min_replicas:
                problems.append(f"{label}: its HPA must run at least {min_replicas} pods")
            if "replicas" in deployment["spec"]:
                problems.append(f"{label}: sets replicas, which would undo the HPA on every apply")
        labels = _pod_labels(deployment)
        budget = next((b for b in budgets if selector_matches(b["spec"]["selector"], labels)), None)
        if budget is None:
            problems.append(f"{label}: no PodDisruptionBudget")
        elif "maxUnavailable" not in budget["spec"]:
            problems.append(f"PodDisruptionBudget/{budget['metadata']['name']}: use maxUnavailable")
    return problems


def image_problems(manifests: Sequence[Manifest], *, pinned_by_digest: bool) -> list[str]:
    problems: list[str] = []
    for workload in _workloads(manifests):
        for where, container in _containers(pod_spec(workload) or {}):
            image = str(container.get("image", ""))
            reference = image.split("@", 1)[0]
            tag = reference.rsplit(":", 1)[1] if ":" in reference.rsplit("/", 1)[-1] else None
            if tag in (None, "latest") and "@" not in image:
                problems.append(f"{_label(workload)} {where}: image {image!r} has no fixed tag")
            if pinned_by_digest and not re.search(r"@sha256:[0-9a-f]{64}$", image):
                problems.append(
                    f"{_label(workload)} {where}: image {image!r} is not pinned by digest"
                )
    return problems


def spread_problems(manifests: Sequence[Manifest]) -> list[str]:
    """Replicas spread over nodes (required) and zones."""
    problems: list[str] = []
    for name in [p.name for p in medstation_processes()] + ["gateway"]:
        deployment = _named(manifests, "Deployment").get(name)
        if deployment is None:
            continue
        constraints = (pod_spec(deployment) or {}).get("topologySpreadConstraints") or []
        keys = {c["topologyKey"]: c for c in constraints}
        labels = _pod_labels(deployment)
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone"):
            constraint = keys.get(key)
            if constraint is None:
                problems.append(f"{_label(deployment)}: pods are not spread over {key}")
            elif not selector_matches(constraint.get("labelSelector"), labels):
                problems.append(f"{_label(deployment)}: its {key} spread selects other pods")
        if keys.get("kubernetes.io/hostname", {}).get("whenUnsatisfiable") != "DoNotSchedule":
            problems.append(f"{_label(deployment)}: two replicas may land on one node")
    return problems


# --- network policies --------------------------------------------------------------------


def outside_endpoints() -> list[Endpoint]:
    """The world around the namespace, as the reachability check sees it."""
    return [
        Endpoint(
            "prometheus",
            "10.245.0.10",
            "monitoring",
            {"app.kubernetes.io/name": "prometheus"},
            (Port(9090, name="web"),),
        ),
        Endpoint(
            "kube-dns",
            "10.245.0.53",
            "kube-system",
            {"k8s-app": "kube-dns"},
            (Port(53, "UDP", "dns"), Port(53, "TCP", "dns-tcp")),
        ),
        Endpoint(
            "tracing-backend",
            "10.245.0.40",
            "observability",
            {"app.kubernetes.io/name": "tempo"},
            (Port(OTLP_PORT, name="otlp-grpc"),),
        ),
        # Same labels as our gateway, in another namespace: labels alone admit nobody.
        Endpoint(
            "lookalike",
            "10.245.0.66",
            "elsewhere",
            {"app.kubernetes.io/name": "gateway", "app.kubernetes.io/part-of": "medstation"},
            (Port(GATEWAY_PORT, name="http"),),
        ),
        Endpoint("internet-client", "203.0.113.10"),
        Endpoint("language-model-api", "203.0.113.20", ports=(Port(443, name="https"),)),
        Endpoint("cloud-metadata", "169.254.169.254", ports=(Port(80, name="http"),)),
    ]


# A managed data store (an ExternalName Service) and the egress policy holding its network.
_MANAGED_NETWORK_POLICY = {f"{s.key}-db": f"{s.key}-to-database" for s in SERVICES} | {
    "redis": "services-to-redis"
}


def managed_endpoints(manifests: Sequence[Manifest]) -> tuple[list[Endpoint], list[str]]:
    """Managed PostgreSQL/Redis behind ExternalName Services, at an address of the network
    their egress policy allows (so two stores sharing one network would show up)."""
    policies = _named(manifests, "NetworkPolicy")
    endpoints: list[Endpoint] = []
    problems: list[str] = []
    for name, service in _named(manifests, "Service").items():
        if service["spec"].get("type") != "ExternalName":
            continue
        policy = policies.get(_MANAGED_NETWORK_POLICY.get(name, ""))
        blocks = [
            peer["ipBlock"]["cidr"]
            for rule in (policy or {}).get("spec", {}).get("egress") or []
            for peer in rule.get("to") or []
            if "ipBlock" in peer
        ]
        if not blocks:
            problems.append(f"Service/{name}: no egress policy names its network (ipBlock)")
            continue
        address = next(ipaddress.ip_network(blocks[0], strict=False).hosts())
        port = REDIS_PORT if name == "redis" else POSTGRES_PORT
        endpoints.append(Endpoint(name, str(address), ports=(Port(port),)))
    return endpoints, problems


def intended(
    source: Endpoint,
    destination: Endpoint,
    port: Port,
    namespace: str,
    *,
    traces_leave_namespace: bool,
) -> bool:
    """The traffic MedStation needs; everything else must be denied."""
    inside = source.namespace == namespace
    processes = {p.name: p for p in medstation_processes()}
    database_of = {p.name: p.database_host for p in processes.values()}
    target = destination.name
    if target == "gateway" and port.number == GATEWAY_PORT:
        return not inside  # clients come from outside; our pods never call the gateway
    if inside and target == "kube-dns":
        return port.number == 53
    if inside and target == "otel-collector":
        return port.number == OTLP_PORT
    if source.name == "prometheus" and target in processes:
        return port.number == processes[target].metrics_port
    if target in GRPC_CALLS.get(source.name, ()):
        return port.number == processes[target].grpc_port
    if database_of.get(source.name) == target:
        return port.number == POSTGRES_PORT
    if source.name in REDIS_CLIENTS and target == "redis":
        return port.number == REDIS_PORT
    if source.name in LANGUAGE_MODEL_CLIENTS and target == "language-model-api":
        return port.number == 443
    if source.name == "otel-collector" and target == "tracing-backend":
        return traces_leave_namespace and port.number == OTLP_PORT
    return False


def network_problems(manifests: Sequence[Manifest], *, traces_leave_namespace: bool) -> list[str]:
    """Default deny, then exactly the intended flows: computed from the policies."""
    problems: list[str] = []
    namespaces = {m["metadata"].get("namespace") for m in _workloads(manifests)}
    if len(namespaces) != 1 or None in namespaces:
        return [f"workloads must share one namespace, found {sorted(map(str, namespaces))}"]
    namespace = str(namespaces.pop())
    policies = [m for m in manifests if m.get("kind") == "NetworkPolicy"]
    if not any(_is_default_deny(p) for p in policies):
        problems.append(
            "no default-deny NetworkPolicy (podSelector {}, Ingress and Egress, no rules)"
        )
    endpoints = list(workload_endpoints(manifests).values())
    managed, managed_problems = managed_endpoints(manifests)
    problems += managed_problems
    endpoints += managed + outside_endpoints()
    labels = {
        m["metadata"]["name"]: m["metadata"].get("labels") or {}
        for m in manifests
        if m.get("kind") == "Namespace"
    }
    policy_set = PolicySet(policies, labels)
    for source in endpoints:
        for destination in endpoints:
            if source is destination or namespace not in (source.namespace, destination.namespace):
                continue
            for port in destination.ports:
                allowed = policy_set.allows(source, destination, port)
                wanted = intended(
                    source,
                    destination,
                    port,
                    namespace,
                    traces_leave_namespace=traces_leave_namespace,
                )
                if allowed != wanted:
                    verdict = "is allowed but not intended" if allowed else "is intended but denied"
                    problems.append(
                        f"NetworkPolicy: {source.name} -> {destination.name}:{port.number}/"
                        f"{port.protocol} {verdict}"
                    )
    return problems


def _is_default_deny(policy: Manifest) -> bool:
    spec = policy["spec"]
    return (
        not (spec.get("podSelector") or {})
        and set(spec.get("policyTypes") or []) == {"Ingress", "Egress"}
        and not spec.get("ingress")
        and not spec.get("egress")
    )
