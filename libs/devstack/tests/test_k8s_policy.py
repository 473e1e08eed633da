"""The NetworkPolicy evaluator, and who can reach whom in the rendered overlays."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.k8s_checks import managed_endpoints, outside_endpoints
from devstack.k8s_policy import Endpoint, PolicyError, PolicySet, Port, workload_endpoints
from devstack.k8s_render import Manifest, render_overlay

NS = "apps"
WEB = Endpoint("web", "10.244.0.2", NS, {"app": "web", "tier": "front"}, (Port(8080, name="http"),))
API = Endpoint(
    "api",
    "10.244.0.3",
    NS,
    {"app": "api"},
    (Port(9000, name="grpc"), Port(9100, name="metrics"), Port(53, "UDP", "dns")),
)
OTHER_NS = Endpoint("web-elsewhere", "10.244.1.2", "other", {"app": "web"})
INTERNET = Endpoint("client", "198.51.100.7")


def policy(name: str, spec: dict[str, Any], namespace: str = NS) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


DENY_ALL = policy("deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})


def test_without_policies_everything_is_open() -> None:
    assert PolicySet([]).allows(WEB, API, Port(9000))


def test_default_deny_closes_both_directions() -> None:
    policies = PolicySet([DENY_ALL])
    assert not policies.ingress_allows(WEB, API, Port(9000))
    assert not policies.egress_allows(WEB, API, Port(9000))


def test_a_connection_needs_the_receivers_ingress_and_the_senders_egress() -> None:
    ingress = policy(
        "api-in",
        {
            "podSelector": {"matchLabels": {"app": "api"}},
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                    "ports": [{"port": 9000}],
                }
            ],
        },
    )
    egress = policy(
        "web-out",
        {
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "api"}}}]}],
        },
    )
    assert not PolicySet([DENY_ALL, ingress]).allows(WEB, API, Port(9000))
    assert not PolicySet([DENY_ALL, egress]).allows(WEB, API, Port(9000))
    both = PolicySet([DENY_ALL, ingress, egress])
    assert both.allows(WEB, API, Port(9000))
    assert not both.allows(WEB, API, Port(9100)), "only the listed port"
    assert not both.allows(API, WEB, Port(8080)), "not the way back"


def test_a_pod_selector_alone_picks_pods_of_the_policys_namespace_only() -> None:
    ingress = policy(
        "api-in",
        {
            "podSelector": {"matchLabels": {"app": "api"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}],
        },
    )
    policies = PolicySet([ingress])
    assert policies.ingress_allows(WEB, API, Port(9000))
    assert not policies.ingress_allows(OTHER_NS, API, Port(9000))
    assert not policies.ingress_allows(INTERNET, API, Port(9000))


def test_namespace_selectors_read_the_namespaces_labels() -> None:
    ingress = policy(
        "api-in",
        {
            "podSelector": {"matchLabels": {"app": "api"}},
            "ingress": [
                {"from": [{"namespaceSelector": {"matchLabels": {"team": "observability"}}}]},
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "other"}
                            },
                            "podSelector": {"matchLabels": {"app": "batch"}},
                        }
                    ]
                },
            ],
        },
    )
    monitor = Endpoint("monitor", "10.244.2.9", "metrics", {"app": "anything"})
    assert PolicySet([ingress], {"metrics": {"team": "observability"}}).ingress_allows(
        monitor, API, Port(9100)
    )
    assert not PolicySet([ingress]).ingress_allows(monitor, API, Port(9100))
    # Both selectors in one peer: that namespace AND that label.
    assert not PolicySet([ingress]).ingress_allows(OTHER_NS, API, Port(9000))
    batch = Endpoint("batch", "10.244.1.3", "other", {"app": "batch"})
    assert PolicySet([ingress]).ingress_allows(batch, API, Port(9000))


def test_match_expressions() -> None:
    ingress = policy(
        "api-in",
        {
            "podSelector": {
                "matchExpressions": [{"key": "app", "operator": "In", "values": ["api"]}]
            },
            "ingress": [
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchExpressions": [
                                    {"key": "tier", "operator": "Exists"},
                                    {"key": "app", "operator": "NotIn", "values": ["api"]},
                                ]
                            }
                        }
                    ]
                }
            ],
        },
    )
    policies = PolicySet([ingress])
    assert policies.ingress_allows(WEB, API, Port(9000))
    untiered = Endpoint("job", "10.244.0.9", NS, {"app": "job"})
    assert not policies.ingress_allows(untiered, API, Port(9000))


def test_ip_blocks_with_exceptions() -> None:
    egress = policy(
        "out",
        {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}],
                    "ports": [{"port": 443}],
                }
            ],
        },
    )
    policies = PolicySet([egress])
    public = Endpoint("api.example", "203.0.113.5", ports=(Port(443),))
    assert policies.egress_allows(WEB, public, Port(443))
    assert not policies.egress_allows(WEB, public, Port(80))
    assert not policies.egress_allows(WEB, API, Port(9000)), "10.244.0.3 is excepted"


def test_named_ports_protocols_and_ranges() -> None:
    ingress = policy(
        "api-in",
        {
            "podSelector": {"matchLabels": {"app": "api"}},
            "ingress": [
                {"ports": [{"port": "metrics"}]},
                {"ports": [{"port": 53, "protocol": "UDP"}]},
                {"ports": [{"port": 8990, "endPort": 9010}]},
            ],
        },
    )
    policies = PolicySet([ingress])
    assert policies.ingress_allows(WEB, API, Port(9100))
    assert policies.ingress_allows(WEB, API, Port(53, "UDP"))
    assert not policies.ingress_allows(WEB, API, Port(53, "TCP"))
    assert policies.ingress_allows(WEB, API, Port(9000)), "inside the range"


def test_malformed_peers_are_refused() -> None:
    bad = policy(
        "bad",
        {
            "podSelector": {},
            "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}],
        },
    )
    with pytest.raises(PolicyError):
        PolicySet([bad]).ingress_allows(WEB, API, Port(9000))


# --- the real overlays ---------------------------------------------------------------------


@pytest.fixture(scope="module", params=["dev", "prod"])
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Manifest]]:
    return request.param, render_overlay(request.param)


def _world(manifests: list[Manifest]) -> tuple[PolicySet, dict[str, Endpoint]]:
    managed, problems = managed_endpoints(manifests)
    assert problems == []
    endpoints = {
        e.name: e for e in [*workload_endpoints(manifests).values(), *managed, *outside_endpoints()]
    }
    return PolicySet([m for m in manifests if m["kind"] == "NetworkPolicy"]), endpoints


@pytest.mark.parametrize(
    ("source", "destination", "port", "allowed"),
    [
        ("gateway", "user", 50051, True),
        ("gateway", "patient-record", 50052, True),
        ("gateway", "summary", 50053, True),
        ("gateway", "chat", 50054, True),
        ("chat", "patient-record", 50052, True),
        ("summary", "patient-record", 50052, True),
        ("summary-worker", "patient-record", 50052, True),
        ("patient-record", "user", 50051, True),
        ("chat", "user", 50051, True),
        ("user", "patient-record", 50052, False),
        ("chat", "summary", 50053, False),
        ("summary-worker", "user", 50051, False),
        ("patient-record", "summary", 50053, False),
        ("gateway", "summary-worker", 50063, False),
        ("chat", "chat-db", 5432, True),
        ("summary", "summary-db", 5432, True),
        ("summary-worker", "summary-db", 5432, True),
        ("chat", "summary-db", 5432, False),
        ("summary-worker", "patient-record-db", 5432, False),
        ("user", "chat-db", 5432, False),
        ("gateway", "user-db", 5432, False),
        ("user", "redis", 6379, True),
        ("summary-worker", "redis", 6379, True),
        ("gateway", "redis", 6379, False),
        ("internet-client", "gateway", 8080, True),
        ("lookalike", "gateway", 8080, True),
        ("internet-client", "user", 50051, False),
        ("lookalike", "patient-record", 50052, False),
        ("prometheus", "user", 9101, True),
        ("prometheus", "summary-worker", 9113, True),
        ("prometheus", "user", 50051, False),
        ("user", "otel-collector", 4317, True),
        ("gateway", "otel-collector", 4317, True),
        ("summary", "language-model-api", 443, True),
        ("chat", "language-model-api", 443, True),
        ("user", "language-model-api", 443, False),
        ("chat", "cloud-metadata", 80, False),
    ],
)
def test_reachability(
    overlay: tuple[str, list[Manifest]], source: str, destination: str, port: int, allowed: bool
) -> None:
    policies, endpoints = _world(overlay[1])
    verdict = policies.allows(endpoints[source], endpoints[destination], Port(port))
    assert verdict is allowed, f"{overlay[0]}: {source} -> {destination}:{port}"


def test_every_pod_resolves_names(overlay: tuple[str, list[Manifest]]) -> None:
    policies, endpoints = _world(overlay[1])
    for name in ("user", "gateway", "summary-worker", "otel-collector"):
        for protocol in ("UDP", "TCP"):
            assert policies.allows(endpoints[name], endpoints["kube-dns"], Port(53, protocol))


def test_in_prod_the_managed_stores_are_reached_by_address() -> None:
    policies, endpoints = _world(render_overlay("prod"))
    assert endpoints["user-db"].namespace is None, "an ExternalName, not a pod"
    assert policies.allows(endpoints["user"], endpoints["user-db"], Port(5432))
    assert not policies.allows(endpoints["chat"], endpoints["user-db"], Port(5432))
    assert policies.allows(endpoints["otel-collector"], endpoints["tracing-backend"], Port(4317))
