from __future__ import annotations

import sys
from pathlib import Path

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from devstack import traces_view
from devstack.health import wait_for_grpc_health
from devstack.ports import free_port
from devstack.process_runner import ProcessRunner
from devstack.span_records import SpanRecord
from devstack.trace_store import TraceLog, TraceStore, rotated_path, span_line

MISSING_PARENT = 0x0BADC0FFEE0DDF00


def _export_spans(port: int) -> int:
    """Export a checkout trace (3 nested spans + 1 orphan) with the real SDK; its trace id."""
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=10)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("devstack-test")
    try:
        with (
            tracer.start_as_current_span("checkout", kind=SpanKind.SERVER) as root,
            tracer.start_as_current_span("load-cart", kind=SpanKind.CLIENT),
            tracer.start_as_current_span("SELECT carts") as query,
        ):
            query.set_attribute("db.system", "postgresql")
            query.set_attribute("patient.name", "never stored")
            trace_id = root.get_span_context().trace_id
        lost_parent = SpanContext(
            trace_id, MISSING_PARENT, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
        )
        context = trace.set_span_in_context(NonRecordingSpan(lost_parent))
        tracer.start_span("late-callback", context=context).end()
    finally:
        provider.shutdown()
    return trace_id


def test_sink_receives_sdk_spans_and_viewer_draws_the_waterfall(
    process_runner: ProcessRunner, tmp_path: Path
) -> None:
    port, out = free_port(), tmp_path / "traces.jsonl"
    argv = [sys.executable, "-m", "devstack", "trace-sink", "--port", str(port), "--out", str(out)]
    process_runner.start("trace-sink", argv)
    wait_for_grpc_health(f"127.0.0.1:{port}", timeout=30)

    trace_id = _export_spans(port)

    [spans] = traces_view.matching(traces_view.load_traces(out), f"{trace_id:032x}")
    by_name = {span["name"]: span for span in spans}
    assert by_name["SELECT carts"]["attributes"] == {"db.system": "postgresql"}
    assert by_name["checkout"]["kind"] == "SERVER"
    lines = traces_view.render_trace(spans)
    header, rows = lines[0], lines[1:]
    assert f"trace {trace_id:032x}" in header
    assert "checkout (shop)" in header
    assert "4 spans" in header
    assert "1 orphan" in header
    assert _indent_of(rows, "shop: checkout") < _indent_of(rows, "shop: load-cart")
    assert _indent_of(rows, "shop: load-cart") < _indent_of(rows, "shop: SELECT carts")
    [orphan_row] = [row for row in rows if "late-callback" in row]
    assert "! shop: late-callback" in orphan_row
    assert f"orphan: parent {MISSING_PARENT:016x} missing" in orphan_row


def _indent_of(rows: list[str], label: str) -> int:
    [row] = [row for row in rows if label in row]
    return row.index(label)


def _record(
    trace_id: str, span_id: str, parent: str, start: int, end: int, status: str = "UNSET"
) -> SpanRecord:
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        service="svc",
        name=f"span-{span_id}",
        kind="INTERNAL",
        start_ns=start,
        end_ns=end,
        status=status,
        status_message="",
        attributes={},
    )


def test_bars_sit_on_the_trace_timeline() -> None:
    spans = [
        _record("t1", "a", "", 0, 1_000_000),
        _record("t1", "b", "a", 500_000, 1_000_000),
    ]

    titles, *rows = traces_view.render_trace(spans)[1:]

    assert titles.split() == ["SERVICE:", "SPAN", "KIND", "DURATION", "STATUS", "TIMELINE", "WHAT"]
    bar_a, bar_b = (row.split("|")[1] for row in rows)
    assert bar_a == "█" * traces_view.BAR_WIDTH
    assert bar_b == " " * 20 + "█" * 20
    assert "1.00 ms" in rows[0]
    assert "0.50 ms" in rows[1]


def test_latest_orders_by_end_and_keeps_the_newest() -> None:
    traces = {
        "old": [_record("old", "a", "", 0, 10)],
        "new": [_record("new", "b", "", 5, 30)],
        "mid": [_record("mid", "c", "", 1, 20)],
    }

    latest = traces_view.latest(traces, 2)

    assert [spans[0]["trace_id"] for spans in latest] == ["mid", "new"]


def test_store_evicts_oldest_traces_beyond_its_bounds() -> None:
    store = TraceStore(max_traces=2, max_bytes=1_000)
    for trace_id in ("t1", "t2", "t3"):
        store.add(_record(trace_id, "s", "", 0, 1), size=10)
    assert store.trace_ids() == ["t2", "t3"]

    store.add(_record("t4", "s", "", 0, 1), size=995)
    assert store.trace_ids() == ["t4"]


def test_log_rotates_and_viewer_reads_both_generations(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    first, second = _record("t1", "a", "", 0, 1), _record("t2", "b", "", 2, 3)
    log = TraceLog(path, max_bytes=len(span_line(first)) + 5)

    log.append([span_line(first)])
    log.append([span_line(second)])
    with path.open("a") as torn:
        torn.write('{"trace_id": "t3", "spa')

    assert rotated_path(path).is_file()
    assert set(traces_view.load_traces(path)) == {"t1", "t2"}
