"""Prometheus metrics for RPCs, served over HTTP on the service's metrics port.

What a MedStation process exposes on `MEDSTATION_METRICS_PORT` (`/metrics`):

- RPCs: `grpc_server_handled_total{grpc_service, grpc_method, grpc_code}` (rate, and
  errors by status code) and `grpc_server_handling_seconds` (latency histogram);
- the connection pools (`pool_metrics.instrument_pool` and `instrument_statement_pool`):
  `db_pool_size`, `db_pool_checked_out_connections`, `db_pool_idle_connections`,
  `db_pool_overflow_connections`, each by `pool`;
- group commits (`group_commit.GroupCommit`): `group_commit_batch_items{name}`, the
  requests that shared each statement;
- in-process caches (`versioned_cache.VersionedCache`): `cache_requests_total{cache,
  result=hit|miss}`;
- outboxes (`outbox.OutboxRelay`): `outbox_unpublished_events`,
  `outbox_oldest_unpublished_age_seconds`, `outbox_events_published_total`,
  `outbox_relay_errors_total`, each by `stream`;
- language models (`medstation_llm`): `medstation_llm_request_seconds{provider, outcome}`
  and `medstation_llm_errors_total{provider, reason}`;
- the summary worker's queue: `summary_jobs_queued`, `summary_job_oldest_queued_age_seconds`.

The gateway's own metrics are Envoy's: `GET /stats/prometheus` on its admin port
(127.0.0.1:9901 under `make run`), e.g. `envoy_cluster_upstream_rq_total{envoy_cluster_name}`
and `envoy_http_downstream_rq_xx{envoy_response_code_class}`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

MetricT = TypeVar("MetricT")
_shared: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Any]] = weakref.WeakKeyDictionary()


def shared_metric(
    registry: CollectorRegistry, name: str, build: Callable[[CollectorRegistry], MetricT]
) -> MetricT:
    """The metric `name` of `registry`, built on first use: prometheus_client refuses a
    name twice, and one process builds several users of a metric (group commits, caches)."""
    metrics = _shared.setdefault(registry, {})
    if name not in metrics:
        metrics[name] = build(registry)
    metric: MetricT = metrics[name]
    return metric


_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True)
class RpcMetrics:
    handled: Counter
    latency: Histogram

    def observe(self, method: str, code: str, seconds: float) -> None:
        self.for_method(method).observe(code, seconds)

    def for_method(self, method: str) -> MethodMetrics:
        """One method's series, looked up once: `labels()` on every call costs more than
        the observation itself."""
        service, _, name = method.lstrip("/").partition("/")
        return MethodMetrics(self.handled, service, name, self.latency.labels(service, name))


class MethodMetrics:
    def __init__(self, handled: Counter, service: str, method: str, latency: Histogram) -> None:
        self._handled = handled
        self._service = service
        self._method = method
        self._latency = latency
        self._handled_by_code: dict[str, Counter] = {}

    def observe(self, code: str, seconds: float) -> None:
        handled = self._handled_by_code.get(code)
        if handled is None:
            handled = self._handled.labels(self._service, self._method, code)
            self._handled_by_code[code] = handled
        handled.inc()
        self._latency.observe(seconds)


def build_rpc_metrics(registry: CollectorRegistry) -> RpcMetrics:
    # Names follow the grpc-ecosystem/go-grpc-prometheus convention operators know.
    return RpcMetrics(
        handled=Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by status code.",
            ["grpc_service", "grpc_method", "grpc_code"],
            registry=registry,
        ),
        latency=Histogram(
            "grpc_server_handling_seconds",
            "Time to handle an RPC on the server.",
            ["grpc_service", "grpc_method"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        ),
    )


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> None:
    """Expose /metrics on a background thread (prometheus_client's own server)."""
    start_http_server(port, addr=host, registry=registry)
