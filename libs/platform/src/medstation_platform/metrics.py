"""Prometheus metrics for RPCs, served over HTTP on the service's metrics port."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True)
class RpcMetrics:
    handled: Counter
    latency: Histogram

    def observe(self, method: str, code: str, seconds: float) -> None:
        service, _, name = method.lstrip("/").partition("/")
        self.handled.labels(service, name, code).inc()
        self.latency.labels(service, name).observe(seconds)


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
