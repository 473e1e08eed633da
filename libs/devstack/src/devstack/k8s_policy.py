"""A NetworkPolicy evaluator: may A open a connection to B on this port?

Kubernetes semantics (networking.k8s.io/v1), the parts our policies use and a little more:
a connection is allowed when the destination's ingress allows it AND the source's egress
allows it. A pod no policy selects for a direction is open in that direction; once any
policy selects it for a direction, only what some selecting policy's rules list is open.
Rules: no `from`/`to` means every peer, no `ports` every port. A peer is a podSelector
(pods of the policy's namespace), a namespaceSelector (every pod of the matching
namespaces), both (those pods in those namespaces), or an ipBlock (addresses, for
endpoints outside the cluster). Ports are numbers, ranges (endPort) or names of the
destination's container ports; the protocol defaults to TCP.

Endpoints are what connects: pods (namespace, labels, named ports, an IP) and endpoints
outside the cluster (no namespace, an IP). Traffic over loopback and the kubelet's probes
are outside NetworkPolicy and outside this model.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devstack.k8s_render import Manifest, pod_spec

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Port:
    number: int
    protocol: str = "TCP"
    name: str | None = None


@dataclass(frozen=True)
class Endpoint:
    """Something that connects or is connected to: a pod, or an address outside."""

    name: str
    ip: str
    namespace: str | None = None  # None: outside the cluster
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[Port, ...] = ()

    def port_named(self, name: str) -> Port | None:
        return next((port for port in self.ports if port.name == name), None)


class PolicyError(ValueError):
    """A policy this evaluator cannot read the way the API server would."""


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector: matchLabels and matchExpressions all hold. {} matches everything."""
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In":
            holds = key in labels and labels[key] in values
        elif operator == "NotIn":
            holds = key not in labels or labels[key] not in values
        elif operator == "Exists":
            holds = key in labels
        elif operator == "DoesNotExist":
            holds = key not in labels
        else:
            raise PolicyError(f"unknown selector operator {operator!r}")
        if not holds:
            return False
    return True


class PolicySet:
    """The NetworkPolicies in force, and the namespaces' labels their selectors read."""

    def __init__(
        self,
        policies: Iterable[Manifest],
        namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self._policies = [p for p in policies if p.get("kind") == "NetworkPolicy"]
        for policy in self._policies:
            if not policy.get("metadata", {}).get("namespace"):
                raise PolicyError(f"NetworkPolicy {policy['metadata']['name']} has no namespace")
        self._namespace_labels = dict(namespace_labels or {})

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        # The API server labels every namespace with its own name.
        return {**self._namespace_labels.get(namespace, {}), NAMESPACE_NAME_LABEL: namespace}

    def allows(self, source: Endpoint, destination: Endpoint, port: Port) -> bool:
        return self.ingress_allows(source, destination, port) and self.egress_allows(
            source, destination, port
        )

    def ingress_allows(self, source: Endpoint, destination: Endpoint, port: Port) -> bool:
        return self._direction_allows("Ingress", destination, source, destination, port)

    def egress_allows(self, source: Endpoint, destination: Endpoint, port: Port) -> bool:
        return self._direction_allows("Egress", source, source, destination, port)

    def _direction_allows(
        self,
        direction: str,
        subject: Endpoint,
        source: Endpoint,
        destination: Endpoint,
        port: Port,
    ) -> bool:
        selecting = [
            policy
            for policy in self._policies
            if subject.namespace == policy["metadata"]["namespace"]
            and direction in _policy_types(policy)
            and selector_matches(policy["spec"].get("podSelector") or {}, subject.labels)
        ]
        if not selecting:
            return True  # not isolated in this direction
        peer = source if direction == "Ingress" else destination
        rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for policy in selecting:
            namespace = policy["metadata"]["namespace"]
            for rule in policy["spec"].get(rules_key) or []:
                if self._peers_match(rule.get(peers_key), peer, namespace) and _ports_match(
                    rule.get("ports"), destination, port
                ):
                    return True
        return False

    def _peers_match(
        self, peers: Sequence[Mapping[str, Any]] | None, endpoint: Endpoint, namespace: str
    ) -> bool:
        if not peers:
            return True
        return any(self._peer_matches(peer, endpoint, namespace) for peer in peers)

    def _peer_matches(self, peer: Mapping[str, Any], endpoint: Endpoint, namespace: str) -> bool:
        if "ipBlock" in peer:
            if "podSelector" in peer or "namespaceSelector" in peer:
                raise PolicyError("an ipBlock peer cannot have selectors too")
            return _in_block(endpoint.ip, peer["ipBlock"])
        if "podSelector" not in peer and "namespaceSelector" not in peer:
            raise PolicyError(f"empty peer {dict(peer)!r}")
        if endpoint.namespace is None:
            return False  # selectors pick pods; an address outside is no pod
        if "namespaceSelector" in peer:
            namespace_ok = selector_matches(
                peer["namespaceSelector"] or {}, self.namespace_labels(endpoint.namespace)
            )
        else:
            namespace_ok = endpoint.namespace == namespace
        return namespace_ok and selector_matches(peer.get("podSelector") or {}, endpoint.labels)


def _policy_types(policy: Manifest) -> list[str]:
    spec = policy["spec"]
    types = spec.get("policyTypes")
    if types:
        return list(types)
    return ["Ingress", *(["Egress"] if "egress" in spec else [])]


def _in_block(ip: str, block: Mapping[str, Any]) -> bool:
    address = ipaddress.ip_address(ip)
    network = ipaddress.ip_network(block["cidr"], strict=False)
    if address.version != network.version or address not in network:
        return False
    return not any(
        address in ipaddress.ip_network(excluded, strict=False)
        for excluded in block.get("except") or []
        if ipaddress.ip_network(excluded, strict=False).version == address.version
    )


def _ports_match(
    ports: Sequence[Mapping[str, Any]] | None, destination: Endpoint, port: Port
) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != port.protocol:
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True  # every port of this protocol
        if isinstance(wanted, str):
            named = destination.port_named(wanted)
            if named is not None and named.number == port.number:
                return True
            continue
        if wanted <= port.number <= int(entry.get("endPort", wanted)):
            return True
    return False


def workload_endpoints(
    manifests: Iterable[Manifest], pod_network: str = "10.244.0.0/16"
) -> dict[str, Endpoint]:
    """One pod per Deployment/StatefulSet/DaemonSet, keyed by the workload's name.

    Pods get addresses from `pod_network`, so ipBlock rules see them as cluster pods.
    """
    addresses = ipaddress.ip_network(pod_network).hosts()
    endpoints: dict[str, Endpoint] = {}
    for manifest in manifests:
        if manifest.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet"):
            continue
        spec = pod_spec(manifest)
        if spec is None:
            continue
        name = manifest["metadata"]["name"]
        labels = manifest["spec"]["template"].get("metadata", {}).get("labels") or {}
        ports = tuple(
            Port(int(port["containerPort"]), port.get("protocol", "TCP"), port.get("name"))
            for container in spec.get("containers") or []
            for port in container.get("ports") or []
        )
        endpoints[name] = Endpoint(
            name=name,
            ip=str(next(addresses)),
            namespace=manifest["metadata"].get("namespace"),
            labels=dict(labels),
            ports=ports,
        )
    return endpoints
