"""What `make traces` shows a person: errors stand out, linked traces are named, SQL is legible."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from devstack import traces_view
from devstack.span_records import SpanLink, SpanRecord, record_from_json, records_from_request
from devstack.trace_store import TraceLog, span_line

REQUEST_TRACE = "a" * 32
JOB_TRACE = "b" * 32


def _span(
    trace_id: str,
    span_id: str,
    parent: str = "",
    *,
    service: str = "svc",
    name: str = "",
    status: str = "UNSET",
    message: str = "",
    attributes: dict[str, str | int | float | bool] | None = None,
    links: list[SpanLink] | None = None,
    start: int = 0,
) -> SpanRecord:
    record = SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        service=service,
        name=name or f"span-{span_id}",
        kind="SERVER",
        start_ns=start,
        end_ns=start + 2_000_000,
        status=status,
        status_message=message,
        attributes=attributes or {},
    )
    if links:
        record["links"] = links
    return record


def _request_and_job() -> dict[str, list[SpanRecord]]:
    return {
        REQUEST_TRACE: [_span(REQUEST_TRACE, "1" * 16, service="gateway", name="POST /v1/x")],
        JOB_TRACE: [
            _span(
                JOB_TRACE,
                "2" * 16,
                service="summary-worker",
                name="patient events process",
                links=[SpanLink(trace_id=REQUEST_TRACE, span_id="1" * 16)],
                start=5_000_000,  # the worker takes the job up after the request
            )
        ],
    }


def test_failed_spans_are_marked_counted_and_explained() -> None:
    spans = [
        _span("t", "a"),
        _span("t", "b", "a", status="ERROR", message="INTERNAL: boom"),
    ]

    header, _titles, ok_row, failed_row = traces_view.render_trace(spans)

    assert "1 error" in header
    assert " ok " in ok_row
    assert "✗ svc: span-b" in failed_row
    assert "ERROR" in failed_row
    assert failed_row.endswith("INTERNAL: boom")


def test_colour_paints_failures_red_only_when_asked() -> None:
    spans = [_span("t", "a", status="ERROR")]

    plain = traces_view.render([spans], color=False)
    painted = traces_view.render([spans], color=True)

    assert "\033[" not in plain
    assert "\033[31m" in painted


def test_a_trace_names_the_trace_it_follows_from_and_who_continues_it() -> None:
    traces = _request_and_job()

    rendered = traces_view.render(traces_view.latest(traces, 2), everything=traces, color=False)

    assert f"follows from trace {REQUEST_TRACE}" in rendered
    assert f"continued by trace {JOB_TRACE}" in rendered


def test_asking_for_one_trace_brings_the_traces_linked_with_it() -> None:
    traces = {**_request_and_job(), "c" * 32: [_span("c" * 32, "3" * 16)]}

    for wanted in (REQUEST_TRACE, JOB_TRACE):
        chosen = traces_view.matching(traces, wanted[:8], linked=True)

        assert [spans[0]["trace_id"] for spans in chosen] == [REQUEST_TRACE, JOB_TRACE]
    assert len(traces_view.matching(traces, REQUEST_TRACE[:8])) == 1


def test_sql_spans_show_their_statement_squeezed() -> None:
    statement = (
        "SELECT patients.id,\n       patients.name\nFROM patients WHERE patients.id = %(id)s"
    )
    spans = [
        _span("t", "a", name="SELECT medstation_patient", attributes={"db.statement": statement})
    ]

    row = traces_view.render_trace(spans)[-1]

    assert "SELECT patients.id, patients.name FROM patients WHERE" in row
    assert "\n" not in row


def test_grpc_status_is_shown_only_when_not_ok() -> None:
    spans = [
        _span("t", "a", attributes={"rpc.grpc.status_code": 0}),
        _span("t", "b", "a", attributes={"rpc.grpc.status_code": 5}),
    ]

    ok_row, not_found_row = traces_view.render_trace(spans)[2:]

    assert "grpc" not in ok_row
    assert "grpc 5" in not_found_row


def test_the_sink_keeps_span_links_and_reads_lines_written_before_links(tmp_path: Path) -> None:
    span = Span(
        trace_id=bytes.fromhex(JOB_TRACE),
        span_id=bytes.fromhex("2" * 16),
        name="patient events process",
        links=[Span.Link(trace_id=bytes.fromhex(REQUEST_TRACE), span_id=bytes.fromhex("1" * 16))],
    )
    service = KeyValue(key="service.name", value=AnyValue(string_value="summary-worker"))
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[service]), scope_spans=[ScopeSpans(spans=[span])]
            )
        ]
    )

    [record] = records_from_request(request)
    old_line = span_line(_span("c" * 32, "3" * 16))
    path = tmp_path / "traces.jsonl"
    TraceLog(path).append([old_line, span_line(record)])

    assert record["links"] == [SpanLink(trace_id=REQUEST_TRACE, span_id="1" * 16)]
    assert record_from_json(old_line) is not None
    assert set(traces_view.load_traces(path)) == {"c" * 32, JOB_TRACE}
