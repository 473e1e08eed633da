"""Schema validation of rendered manifests, offline, strict, with CRDs handled on purpose.

Built-in kinds go through kubernetes-validate's strict schemas (an unknown field is an
error, not a silent drop) for every Kubernetes version in KUBERNETES_VERSIONS. Its Python
API raises on a problem; the CLI exits 0 on unknown versions and CRDs, so it is not used.

kubernetes-validate has no schema for custom resources: each CRD kind we ship has a
validator of its own in CRD_VALIDATORS, and any other kind without a schema is reported,
never skipped silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import promql_parser
from kubernetes_validate.utils import SchemaNotFoundError  # type: ignore[import-untyped]

from devstack.k8s_render import Manifest

# The oldest release we support and the newest the schemas know: an API removed or
# changed in between fails one of them.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")

SEVERITIES = ("critical", "warning", "info")

CrdValidator = Callable[[Manifest], list[str]]


def schema_problems(
    manifests: Sequence[Manifest], versions: Sequence[str] = KUBERNETES_VERSIONS
) -> list[str]:
    """One line per object that fails its schema (or has none we know)."""
    problems: list[str] = []
    for manifest in manifests:
        problems.extend(manifest_problems(manifest, versions))
    return problems


def manifest_problems(manifest: Manifest, versions: Sequence[str]) -> list[str]:
    name = f"{manifest.get('kind')}/{(manifest.get('metadata') or {}).get('name')}"
    crd = CRD_VALIDATORS.get((manifest.get("apiVersion", ""), manifest.get("kind", "")))
    if crd is not None:
        return [f"{name}: {problem}" for problem in crd(manifest)]
    problems: list[str] = []
    for version in versions:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path) or "(root)"
            problems.append(f"{name}: invalid for Kubernetes {version} at {path}: {error.message}")
        except SchemaNotFoundError:
            problems.append(
                f"{name}: no schema for {manifest.get('apiVersion')} {manifest.get('kind')} "
                f"in Kubernetes {version}, and no CRD validator: add one to CRD_VALIDATORS"
            )
    return problems


def _unknown_keys(mapping: object, allowed: Iterable[str], where: str) -> list[str]:
    if not isinstance(mapping, dict):
        return [f"{where} must be a mapping"]
    return [f"{where}.{key}: unknown field" for key in mapping if key not in set(allowed)]


def _metadata_problems(manifest: Manifest) -> list[str]:
    problems = _unknown_keys(manifest, ("apiVersion", "kind", "metadata", "spec"), "")
    metadata = manifest.get("metadata") or {}
    if not isinstance(metadata.get("name"), str) or not metadata["name"]:
        problems.append("metadata.name is missing")
    return problems


def validate_prometheus_rule(manifest: Manifest) -> list[str]:
    """monitoring.coreos.com/v1 PrometheusRule: its fields, durations and PromQL."""
    problems = _metadata_problems(manifest)
    spec = manifest.get("spec") or {}
    problems += _unknown_keys(spec, ("groups",), "spec")
    problems += rule_groups_problems(spec.get("groups"), "spec.groups")
    return problems


def rule_groups_problems(groups: Any, where: str = "groups") -> list[str]:
    """Prometheus rule groups (a rule file's `groups`, or a PrometheusRule's)."""
    if not isinstance(groups, list) or not groups:
        return [f"{where} must be a non-empty list"]
    problems: list[str] = []
    names = [group.get("name") for group in groups if isinstance(group, dict)]
    if len(set(names)) != len(names):
        problems.append(f"{where}: group names repeat: {names}")
    for index, group in enumerate(groups):
        at = f"{where}[{index}]"
        problems += _unknown_keys(group, ("name", "interval", "rules"), at)
        if not isinstance(group, dict):
            continue
        if not isinstance(group.get("name"), str):
            problems.append(f"{at}.name is missing")
        rules = group.get("rules")
        if not isinstance(rules, list) or not rules:
            problems.append(f"{at}.rules must be a non-empty list")
            continue
        for rule_index, rule in enumerate(rules):
            problems += _rule_problems(rule, f"{at}.rules[{rule_index}]")
    return problems


def _rule_problems(rule: Any, at: str) -> list[str]:
    allowed = ("alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations")
    problems = _unknown_keys(rule, allowed, at)
    if not isinstance(rule, dict):
        return problems
    if ("alert" in rule) == ("record" in rule):
        problems.append(f"{at}: needs exactly one of alert and record")
    problems += promql_problems(rule.get("expr"), f"{at}.expr")
    for field in ("for", "keep_firing_for"):
        if field in rule:
            try:
                promql_parser.parse_duration(str(rule[field]))
            except ValueError as error:
                problems.append(f"{at}.{field}: {error}")
    if "alert" in rule:
        severity = (rule.get("labels") or {}).get("severity")
        if severity not in SEVERITIES:
            problems.append(f"{at}: labels.severity must be one of {SEVERITIES}, not {severity!r}")
        if not (rule.get("annotations") or {}).get("summary"):
            problems.append(f"{at}: annotations.summary is missing")
    return problems


def promql_problems(expression: Any, at: str) -> list[str]:
    if not isinstance(expression, str) or not expression.strip():
        return [f"{at}: expr is missing"]
    try:
        promql_parser.parse(expression)
    except ValueError as error:
        return [f"{at}: invalid PromQL: {error}"]
    return []


def validate_pod_monitor(manifest: Manifest) -> list[str]:
    """monitoring.coreos.com/v1 PodMonitor: the fields we use, strictly."""
    problems = _metadata_problems(manifest)
    spec = manifest.get("spec") or {}
    problems += _unknown_keys(
        spec, ("jobLabel", "selector", "namespaceSelector", "podMetricsEndpoints"), "spec"
    )
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (
        selector.get("matchLabels") or selector.get("matchExpressions")
    ):
        problems.append("spec.selector must select pods (an empty one would scrape everything)")
    endpoints = spec.get("podMetricsEndpoints")
    if not isinstance(endpoints, list) or not endpoints:
        problems.append("spec.podMetricsEndpoints must be a non-empty list")
        return problems
    for index, endpoint in enumerate(endpoints):
        at = f"spec.podMetricsEndpoints[{index}]"
        problems += _unknown_keys(endpoint, ("port", "path", "interval", "scrapeTimeout"), at)
        if isinstance(endpoint, dict) and not isinstance(endpoint.get("port"), str):
            problems.append(f"{at}.port must name a container port")
    return problems


CRD_VALIDATORS: dict[tuple[str, str], CrdValidator] = {
    ("monitoring.coreos.com/v1", "PrometheusRule"): validate_prometheus_rule,
    ("monitoring.coreos.com/v1", "PodMonitor"): validate_pod_monitor,
}
