"""OpenTelemetry tracing, configured by the standard OTEL_* environment variables.

Call `configure_tracing` first thing in `__main__`: the gRPC instrumentation patches
`grpc.aio.server` / channel creation, so anything created earlier would not be traced.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcAioInstrumentorServer
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sqlalchemy.ext.asyncio import AsyncEngine

# Health probes every second would drown real traces.
_EXCLUDED_SERVICES = "grpc.health.v1.Health,grpc.reflection.v1alpha.ServerReflection"


def configure_tracing(default_service_name: str) -> TracerProvider:
    """Install the tracer provider and the gRPC + Redis instrumentation.

    OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES name the process (default: the
    service's own name); OTEL_TRACES_SAMPLER picks the sampler; spans are exported over
    OTLP/gRPC only when OTEL_EXPORTER_OTLP_ENDPOINT (or the traces variant) is set.
    """
    os.environ.setdefault("OTEL_SERVICE_NAME", default_service_name)
    os.environ.setdefault("OTEL_PYTHON_GRPC_EXCLUDED_SERVICES", _EXCLUDED_SERVICES)
    provider = TracerProvider(resource=Resource.create())
    if _exporter_configured():
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(insecure=True)))
    trace.set_tracer_provider(provider)
    GrpcAioInstrumentorServer().instrument()
    GrpcAioInstrumentorClient().instrument()
    RedisInstrumentor().instrument()
    return provider


def instrument_engine(engine: AsyncEngine) -> None:
    """Spans for every SQL statement (text only: bound parameters may hold PHI)."""
    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, enable_commenter=False)


def _exporter_configured() -> bool:
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp") == "none":
        return False
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
