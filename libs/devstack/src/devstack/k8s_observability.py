"""Alert rules and dashboards may only query metrics the code exports.

The exported names are read from the source: every prometheus_client metric constructed
in libs/*/src and services/*/src with a literal name, expanded to the series it produces
(a Histogram `x` is x_bucket, x_sum, x_count...). A rule or panel naming anything else is
reported: it would show "no data" or never fire, silently.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from devstack.k8s_render import Manifest
from devstack.k8s_validate import rule_groups_problems

# Series Prometheus adds to every scrape itself.
SCRAPE_SERIES = frozenset(
    {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}
)
# Metric objects, and the metric families custom collectors yield at scrape time.
_METRIC_CLASSES = {
    "Counter": "Counter",
    "Gauge": "Gauge",
    "Histogram": "Histogram",
    "Summary": "Summary",
    "Info": "Info",
    "Enum": "Gauge",
    "CounterMetricFamily": "Counter",
    "GaugeMetricFamily": "Gauge",
    "HistogramMetricFamily": "Histogram",
    "SummaryMetricFamily": "Summary",
    "InfoMetricFamily": "Info",
}
# Grafana's variables are not PromQL: give each a value the parser accepts.
_GRAFANA_VARIABLES = (
    (re.compile(r"\$__(rate_)?interval|\$__range"), "5m"),
    (re.compile(r"\$\{?\w+\}?"), "x"),
)


@functools.cache
def exported_metric_names(repo_root: Path) -> frozenset[str]:
    """Every series name the MedStation processes can expose (read once per process)."""
    names: set[str] = set(SCRAPE_SERIES)
    sources = [*repo_root.glob("libs/*/src/**/*.py"), *repo_root.glob("services/*/src/**/*.py")]
    for path in sources:
        for kind, name in _metric_constructions(path.read_text(encoding="utf-8")):
            names.update(_series_of(kind, name))
    return frozenset(names)


def _metric_constructions(source: str) -> Iterable[tuple[str, str]]:
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        function = node.func
        kind = function.id if isinstance(function, ast.Name) else getattr(function, "attr", "")
        first = node.args[0]
        if (
            kind in _METRIC_CLASSES
            and isinstance(first, ast.Constant)
            and isinstance(first.value, str)
        ):
            yield kind, first.value


def _series_of(kind: str, name: str) -> set[str]:
    if kind == "Counter":
        base = name.removesuffix("_total")
        return {f"{base}_total", f"{base}_created"}
    if kind == "Histogram":
        return {name, f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
    if kind == "Summary":
        return {name, f"{name}_sum", f"{name}_count", f"{name}_created"}
    if kind == "Info":
        return {f"{name}_info"}
    return {name}


def metric_names_in(expression: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana variables allowed)."""
    for pattern, replacement in _GRAFANA_VARIABLES:
        expression = pattern.sub(replacement, expression)
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expression), pre_visit=visit)
    return names


def expression_problems(expression: str, known: frozenset[str], where: str) -> list[str]:
    try:
        used = metric_names_in(expression)
    except ValueError as error:
        return [f"{where}: invalid PromQL: {error}"]
    return [f"{where}: no process exports {name}" for name in sorted(used - known)]


def rule_file_problems(
    rule_file: Mapping[str, Any], known: frozenset[str], where: str
) -> list[str]:
    """A Prometheus rule file (or PrometheusRule spec): valid, and on exported metrics."""
    groups = rule_file.get("groups")
    problems = [f"{where}: {problem}" for problem in rule_groups_problems(groups)]
    for group in groups if isinstance(groups, list) else []:
        for rule in group.get("rules") or []:
            label = rule.get("alert") or rule.get("record")
            problems += expression_problems(str(rule.get("expr", "")), known, f"{where} {label}")
    return problems


def dashboard_problems(
    dashboard: Mapping[str, Any], known: frozenset[str], where: str
) -> list[str]:
    """Every panel query of a Grafana dashboard parses and uses exported metrics."""
    problems: list[str] = []
    expressions = list(_dashboard_expressions(dashboard.get("panels") or []))
    if not expressions:
        problems.append(f"{where}: the dashboard has no queries")
    for title, expression in expressions:
        problems += expression_problems(expression, known, f"{where} panel {title!r}")
    if not isinstance(dashboard.get("uid"), str) or not dashboard["uid"]:
        problems.append(f"{where}: the dashboard needs a stable uid")
    return problems


def _dashboard_expressions(panels: Sequence[Mapping[str, Any]]) -> Iterable[tuple[str, str]]:
    for panel in panels:
        yield from _dashboard_expressions(panel.get("panels") or [])
        for target in panel.get("targets") or []:
            if target.get("expr"):
                yield str(panel.get("title")), str(target["expr"])


def observability_problems(manifests: Sequence[Manifest], known: frozenset[str]) -> list[str]:
    """Check the rule ConfigMaps, dashboard ConfigMaps and PrometheusRules of a render."""
    problems: list[str] = []
    dashboards = rules = 0
    for manifest in manifests:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        labels = manifest["metadata"].get("labels") or {}
        if kind == "ConfigMap" and labels.get("grafana_dashboard"):
            for key, text in (manifest.get("data") or {}).items():
                dashboards += 1
                problems += dashboard_problems(json.loads(text), known, f"ConfigMap/{name} {key}")
        elif kind == "ConfigMap" and labels.get("prometheus_rule"):
            for key, text in (manifest.get("data") or {}).items():
                rules += 1
                problems += rule_file_problems(
                    yaml.safe_load(text), known, f"ConfigMap/{name} {key}"
                )
        elif kind == "PrometheusRule":
            rules += 1
            problems += rule_file_problems(manifest["spec"], known, f"PrometheusRule/{name}")
    if not dashboards:
        problems.append("no ConfigMap labelled grafana_dashboard")
    if not rules:
        problems.append("no alert rules (ConfigMap labelled prometheus_rule, or PrometheusRule)")
    return problems
