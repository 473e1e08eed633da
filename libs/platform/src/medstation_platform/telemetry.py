"""OpenTelemetry tracing, configured by the standard OTEL_* environment variables.

Call `configure_tracing` first thing in `__main__`: the gRPC instrumentation patches
`grpc.aio.server` / channel creation, so anything created earlier would not be traced.

What a span may carry is limited on purpose, since requests carry patient data: gRPC
spans name the method, never the messages; SQL spans carry the statement with its
placeholders, never the bound parameters; Redis spans the command with its arguments
replaced by `?`; HTTP client spans (language-model calls) the method, URL and status,
never a body or a header. Error text is passed through `redaction.redact` on the way out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Status, Tracer
from sqlalchemy.ext.asyncio import AsyncEngine

from medstation_platform.redaction import redact

if TYPE_CHECKING:
    import httpx

# Health probes every second would drown real traces; reflection is a tool's, not a user's.
INFRASTRUCTURE_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection")
_EXCLUDED_SERVICES_VARIABLE = "OTEL_PYTHON_GRPC_EXCLUDED_SERVICES"


def configure_tracing(default_service_name: str) -> TracerProvider:
    """Install the tracer provider and the gRPC client and Redis instrumentation.

    The SDK reads the standard variables: OTEL_SERVICE_NAME (default: the process's own
    name) and OTEL_RESOURCE_ATTRIBUTES name the process; OTEL_TRACES_SAMPLER/_ARG pick
    the sampler (default: parent-based, always on); OTEL_SDK_DISABLED turns it all off.
    Spans are exported over OTLP/gRPC only when OTEL_EXPORTER_OTLP_ENDPOINT (or the
    traces variant) is set, with the exporter's own variables (headers, TLS, timeout).
    """
    os.environ.setdefault("OTEL_SERVICE_NAME", default_service_name)
    os.environ[_EXCLUDED_SERVICES_VARIABLE] = excluded_grpc_services(
        os.environ.get(_EXCLUDED_SERVICES_VARIABLE, "")
    )
    provider = TracerProvider(resource=Resource.create())
    if _exporter_configured():
        exporter = RedactingSpanExporter(OTLPSpanExporter())
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    # Server spans are opened by the RPC pipeline itself (medstation_platform.rpc.server_spans).
    GrpcAioInstrumentorClient().instrument()
    RedisInstrumentor().instrument()
    # HTTP clients are traced one by one (instrument_http_client): instrumenting httpx
    # here would load it, ~8 MB, into every process, most of which never send HTTP.
    return provider


def instrument_http_client(client: httpx.AsyncClient) -> None:
    """Spans for every request `client` sends, joined to the current trace.

    Request and response bodies are never recorded, and the URL carries no secret (API
    keys travel in headers, which are not recorded either).
    """
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client)


@contextmanager
def startup_span(tracer: Tracer | None = None) -> Iterator[None]:
    """One trace for the work a process does before serving (keys, accounts, caches).

    Without it each of those statements is a one-span trace of its own. Wrap only the
    building, never the serving: tasks started inside would all join this one trace.
    """
    with (tracer or trace.get_tracer(__name__)).start_as_current_span("startup"):
        yield


def excluded_grpc_services(configured: str) -> str:
    """The operator's list of untraced gRPC services, always with health and reflection."""
    services = [name.strip() for name in configured.split(",") if name.strip()]
    services += [name for name in INFRASTRUCTURE_SERVICES if name not in services]
    return ",".join(services)


def instrument_engine(engine: AsyncEngine) -> None:
    """Spans for every SQL statement (text only: bound parameters may hold PHI).

    The statement tracer alone, not SQLAlchemyInstrumentor: the instrumentor also wraps
    every `Engine.connect` in a "connect" span, which for a pooled engine times a pool
    checkout, not a connection, and cost about a tenth of a point read's CPU.
    """
    meter = metrics.get_meter(__name__)
    EngineTracer(  # type: ignore[no-untyped-call]  # the instrumentation is untyped
        trace.get_tracer("opentelemetry.instrumentation.sqlalchemy"),
        engine.sync_engine,
        meter.create_up_down_counter("db.client.connections.usage"),
        False,  # no sqlcommenter: comments would defeat prepared-statement reuse
    )


class RedactingSpanExporter(SpanExporter):
    """Passes spans on with the values quoted by error text (status, exception events)
    redacted: a failed INSERT's status would otherwise carry the row PostgreSQL quotes."""

    def __init__(self, exporter: SpanExporter) -> None:
        self._exporter = exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._exporter.export([redacted_span(span) for span in spans])

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._exporter.force_flush(timeout_millis)


def redacted_span(span: ReadableSpan) -> ReadableSpan:
    """`span` itself when its error text quotes nothing, else a copy with it redacted."""
    description = span.status.description
    clean_description = redact(description) if description else description
    events = tuple(_redacted_event(event) for event in span.events)
    unchanged = all(new is old for new, old in zip(events, span.events, strict=True))
    if clean_description == description and unchanged:
        return span
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes,
        events=events,
        links=span.links,
        kind=span.kind,
        status=Status(span.status.status_code, clean_description),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _redacted_event(event: Event) -> Event:
    attributes = dict(event.attributes or {})
    texts = {key: value for key, value in attributes.items() if isinstance(value, str)}
    clean = {key: redact(value) for key, value in texts.items()}
    if clean == texts:
        return event
    return Event(event.name, {**attributes, **clean}, event.timestamp)


def _exporter_configured() -> bool:
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
