"""OTLP spans as flat JSON records: what the trace sink stores and the viewer reads."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import NotRequired, TypedDict

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

AttributeValue = str | int | float | bool

# Enough to tell what a span did; everything else (and any PHI in it) stays out of the file.
_KEPT_ATTRIBUTE_PREFIXES = (
    "rpc.",
    "http.",
    "url.",
    "server.",
    "net.",
    "db.system",
    "db.name",
    "db.operation",
    "db.statement",
    "db.query.text",
    "messaging.",
    "grpc.status_code",  # Envoy's tag on gRPC calls it proxied
    "error.",
    "exception.type",
    "upstream_cluster",
    "component",
    "response_flags",
)
_MAX_ATTRIBUTE_CHARS = 300


class SpanLink(TypedDict):
    """Another span this one is linked to, e.g. a job's span to the request that queued it."""

    trace_id: str
    span_id: str


class SpanRecord(TypedDict):
    """One span, flattened: ids in lowercase hex, times in Unix nanoseconds."""

    trace_id: str
    span_id: str
    parent_span_id: str
    service: str
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status: str
    status_message: str
    attributes: dict[str, AttributeValue]
    links: NotRequired[list[SpanLink]]  # only when the span has any


# Spelled out: with postponed annotations, Python 3.11 counts NotRequired keys as required.
_REQUIRED_KEYS = frozenset(SpanRecord.__annotations__) - {"links"}


def records_from_request(request: ExportTraceServiceRequest) -> list[SpanRecord]:
    records: list[SpanRecord] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes, keep_all=True)
        service = str(resource.get("service.name", "unknown"))
        for scope_spans in resource_spans.scope_spans:
            records.extend(_record(span, service) for span in scope_spans.spans)
    return records


def record_from_json(line: str) -> SpanRecord | None:
    """Parse one JSON line written by the sink; anything else (a torn write) is None."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    if not isinstance(value, dict) or not value.keys() >= _REQUIRED_KEYS:
        return None
    record: SpanRecord = value  # type: ignore[assignment]  # keys checked just above
    return record


def _record(span: Span, service: str) -> SpanRecord:
    record = SpanRecord(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        service=service,
        name=span.name,
        kind=Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        status=Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_"),
        status_message=span.status.message,
        attributes=_attributes(span.attributes, keep_all=False),
    )
    if span.links:
        record["links"] = [
            SpanLink(trace_id=link.trace_id.hex(), span_id=link.span_id.hex())
            for link in span.links
        ]
    return record


def _attributes(pairs: Iterable[KeyValue], *, keep_all: bool) -> dict[str, AttributeValue]:
    kept: dict[str, AttributeValue] = {}
    for pair in pairs:
        if keep_all or pair.key.startswith(_KEPT_ATTRIBUTE_PREFIXES):
            kept[pair.key] = _scalar(pair.value)
    return kept


def _scalar(value: AnyValue) -> AttributeValue:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value[:_MAX_ATTRIBUTE_CHARS]
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    return str(value).strip()[:_MAX_ATTRIBUTE_CHARS]  # arrays, maps, bytes: readable enough
