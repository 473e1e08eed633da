"""Alert rules and the dashboard query metrics that exist, and cover what operators need."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from devstack import gateway_config
from devstack.k8s_observability import (
    dashboard_problems,
    exported_metric_names,
    metric_names_in,
    rule_file_problems,
)

OBSERVABILITY = Path("k8s") / "base" / "observability"


@pytest.fixture(scope="module")
def root() -> Path:
    return gateway_config.repo_root()


@pytest.fixture(scope="module")
def known(root: Path) -> frozenset[str]:
    return exported_metric_names(root)


@pytest.fixture(scope="module")
def alerts(root: Path) -> dict[str, object]:
    loaded: dict[str, object] = yaml.safe_load((root / OBSERVABILITY / "alerts.yaml").read_text())
    return loaded


@pytest.fixture(scope="module")
def dashboard(root: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((root / OBSERVABILITY / "dashboard.json").read_text())
    return loaded


def test_the_exported_names_are_read_from_the_code(known: frozenset[str]) -> None:
    # Platform RPC metrics (a histogram's series), group commits, the outbox, the summary
    # worker.
    assert {
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_bucket",
        "grpc_server_handling_seconds_count",
        "group_commit_batch_items_count",
        "group_commit_batch_items_sum",
        "outbox_oldest_unpublished_age_seconds",
        "summary_jobs_queued",
        "summary_job_oldest_queued_age_seconds",
        "summary_jobs_processed_total",
        "db_pool_checked_out_connections",  # yielded by a custom collector at scrape time
        "medstation_llm_request_seconds_bucket",
        "medstation_llm_errors_total",
        "up",
    } <= known
    assert "grpc_server_handling_seconds_total" not in known


def test_the_alert_rules_are_valid_and_use_exported_metrics(
    alerts: dict[str, object], known: frozenset[str]
) -> None:
    assert rule_file_problems(alerts, known, "alerts.yaml") == []


def test_the_alerts_cover_latency_errors_jobs_and_targets(alerts: dict[str, object]) -> None:
    groups = alerts["groups"]
    assert isinstance(groups, list)
    used = {
        name
        for group in groups
        for rule in group["rules"]
        for name in metric_names_in(rule["expr"])
    }
    assert {
        "grpc_server_handling_seconds_bucket",  # p99 latency
        "grpc_server_handled_total",  # server error codes (the gateway's 5xx)
        "summary_jobs_queued",  # queue depth
        "summary_job_oldest_queued_age_seconds",  # oldest pending job
        "summary_jobs_processed_total",  # job failures
        "up",  # a target down
    } <= used
    severities = {rule["labels"]["severity"] for group in groups for rule in group["rules"]}
    assert "critical" in severities


def test_the_dashboard_is_valid_and_uses_exported_metrics(
    dashboard: dict[str, object], known: frozenset[str]
) -> None:
    assert dashboard_problems(dashboard, known, "dashboard.json") == []


def test_the_dashboard_shows_what_operators_need(dashboard: dict[str, object]) -> None:
    panels = dashboard["panels"]
    assert isinstance(panels, list)
    expressions = [t["expr"] for p in panels for t in p.get("targets") or []]
    used = {name for expression in expressions for name in metric_names_in(expression)}
    assert {
        "grpc_server_handled_total",  # per-RPC rate, errors by code
        "grpc_server_handling_seconds_bucket",  # p50 / p99
        "group_commit_batch_items_sum",  # requests per statement, with _count
        "group_commit_batch_items_count",  # statements per second
        "outbox_oldest_unpublished_age_seconds",  # outbox lag
        "summary_jobs_queued",  # job queue depth
        "summary_job_duration_seconds_bucket",
        "db_pool_checked_out_connections",  # DB pool
        "medstation_llm_request_seconds_bucket",  # LLM latency
        "medstation_llm_errors_total",  # LLM errors
    } <= used
    assert any("histogram_quantile(0.5," in e for e in expressions)
    assert any("histogram_quantile(0.99," in e for e in expressions)
    assert any("by (grpc_code)" in e for e in expressions)


def test_a_rule_on_a_metric_nobody_exports_is_reported(known: frozenset[str]) -> None:
    rules = {
        "groups": [
            {
                "name": "g",
                "rules": [
                    {
                        "alert": "PoolExhausted",
                        "expr": "db_pool_waiting > 0",
                        "labels": {"severity": "warning"},
                        "annotations": {"summary": "waiting"},
                    },
                    {
                        "alert": "Broken",
                        "expr": "rate(up[5m]",
                        "labels": {"severity": "warning"},
                        "annotations": {"summary": "broken"},
                    },
                ],
            }
        ]
    }
    problems = rule_file_problems(rules, known, "rules")
    assert any("PoolExhausted: no process exports db_pool_waiting" in p for p in problems)
    assert any("invalid PromQL" in p for p in problems)


def test_dashboard_queries_may_use_grafana_variables(known: frozenset[str]) -> None:
    dashboard = {
        "uid": "x",
        "panels": [
            {
                "title": "rate",
                "targets": [{"expr": 'sum(rate(up{job=~"$service"}[$__rate_interval]))'}],
            },
            {"title": "typo", "targets": [{"expr": "sum(grpc_server_handled)"}]},
        ],
    }
    assert dashboard_problems(dashboard, known, "d") == [
        "d panel 'typo': no process exports grpc_server_handled"
    ]
