"""Log lines are JSON a log pipeline can index, joined to traces, without patient data."""

from __future__ import annotations

import json
import logging
import sys

from opentelemetry.sdk.trace import TracerProvider

from medstation_platform.logs import JsonFormatter, reset_current_rpc, set_current_rpc


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"msg": message, "args": args, "levelname": "WARNING"})
    record.name = "test"
    record.__dict__.update(extra)
    return record


def test_a_line_names_its_service_level_and_time() -> None:
    line = json.loads(JsonFormatter("patient-record").format(_record("cache %s", "down")))

    assert line["service"] == "patient-record"
    assert line["level"] == "WARNING"
    assert line["message"] == "cache down"
    assert line["timestamp"].endswith("+00:00")
    assert "trace_id" not in line
    assert "rpc" not in line


def test_inside_a_span_and_an_rpc_the_line_names_both() -> None:
    tracer = TracerProvider().get_tracer("test")
    token = set_current_rpc("/medstation.patient.v1.PatientRecordService/GetPatient")
    try:
        with tracer.start_as_current_span("rpc") as span:
            line = json.loads(JsonFormatter("svc").format(_record("rpc finished", grpc_code="OK")))
            context = span.get_span_context()
    finally:
        reset_current_rpc(token)

    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    assert line["rpc"] == "/medstation.patient.v1.PatientRecordService/GetPatient"
    assert line["grpc_code"] == "OK"


def test_database_values_in_messages_extras_and_tracebacks_are_redacted() -> None:
    failure = "duplicate key\nDETAIL:  Key (mrn)=(Zebulon) already exists."
    try:
        raise ValueError(failure)
    except ValueError:
        record = _record("failed: %s", failure, cause=failure)
        record.exc_info = sys.exc_info()

    text = JsonFormatter("svc").format(record)

    assert "Zebulon" not in text
    line = json.loads(text)
    assert "ValueError: duplicate key" in line["exception"]
    assert line["cause"] == "duplicate key\nDETAIL: (redacted)"
