"""Tracing as a service process gets it: one trace per call, no payloads, no patient data."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from devstack.fake_llm import OPENAI_PATH, FakeLlmServer
from devstack.trace_sink import TraceSink, start_trace_sink
from devstack.trace_store import TraceLog, TraceStore
from medstation_platform.telemetry import (
    RedactingSpanExporter,
    excluded_grpc_services,
    startup_span,
)

PROBE = Path(__file__).with_name("telemetry_probe.py")
Record = dict[str, Any]


class ProbeRun:
    def __init__(self, marker: str, spans: list[Record], logs: list[Record], resource: Record):
        self.marker = marker
        self.spans = spans
        self.logs = logs
        self.resource = resource

    def named(self, name: str) -> Record:
        [span] = [span for span in self.spans if span["name"] == name]
        return span


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    path = tmp_path / "traces.jsonl"
    server, port = await start_trace_sink(TraceSink(TraceStore(), TraceLog(path)), "127.0.0.1", 0)
    yield f"http://127.0.0.1:{port}", path
    await server.stop(None)


@pytest.fixture
async def llm() -> AsyncIterator[FakeLlmServer]:
    async with FakeLlmServer() as server:
        yield server


async def _run_probe(
    sink: tuple[str, Path],
    llm: FakeLlmServer,
    database_url: str,
    redis_url: str,
    **env: str,
) -> ProbeRun:
    endpoint, path = sink
    marker = f"Zebulon Quartermaine {secrets.token_hex(4)}"  # a patient's name, say
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(PROBE), marker, database_url, redis_url,
        f"{llm.base_url}{OPENAI_PATH}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={
            **os.environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_SERVICE_NAME": "probe-svc",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
            **env,
        },
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    text = output.decode()
    assert process.returncode == 0, text
    *log_lines, resource_line = text.splitlines()
    spans = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return ProbeRun(
        marker, spans, [json.loads(line) for line in log_lines], json.loads(resource_line)
    )


@pytest.fixture
async def probe(
    sink: tuple[str, Path], llm: FakeLlmServer, make_database: Any, redis_url: str
) -> ProbeRun:
    return await _run_probe(sink, llm, make_database("telemetry"), redis_url)


def test_one_call_is_one_trace_with_every_hop_and_no_orphans(probe: ProbeRun) -> None:
    [trace_id] = {span["trace_id"] for span in probe.spans}
    span_ids = {span["span_id"] for span in probe.spans}
    orphans = [
        s for s in probe.spans if s["parent_span_id"] and s["parent_span_id"] not in span_ids
    ]
    kinds = {(span["kind"], span["name"].split()[0]) for span in probe.spans}

    assert orphans == []
    assert {("CLIENT", "/probe.v1.Probe/Echo"), ("SERVER", "/probe.v1.Probe/Echo")} <= kinds
    assert {
        ("CLIENT", "CREATE"),
        ("CLIENT", "INSERT"),
        ("CLIENT", "SET"),
        ("CLIENT", "GET"),
    } <= kinds
    assert ("CLIENT", "POST") in kinds  # the HTTP call, as to a language model
    statements = [s["attributes"].get("db.statement", "") for s in probe.spans]
    assert "SELECT 2 AS from_the_second_engine" in statements
    assert trace_id


def test_grpc_spans_name_the_method_and_health_checks_are_not_traced(probe: ProbeRun) -> None:
    server = [s for s in probe.spans if s["kind"] == "SERVER"]

    assert [s["name"] for s in server] == ["/probe.v1.Probe/Echo"]
    attributes = server[0]["attributes"]
    assert attributes["rpc.system"] == "grpc"
    assert attributes["rpc.service"] == "probe.v1.Probe"
    assert attributes["rpc.method"] == "Echo"
    assert not [s for s in probe.spans if "grpc.health" in s["name"]]


def test_spans_carry_statements_and_commands_never_values(probe: ProbeRun) -> None:
    inserts = [s for s in probe.spans if s["name"].startswith("INSERT")]
    [redis_set] = [s for s in probe.spans if s["name"] == "SET"]
    [failed] = [s for s in inserts if s["status"] == "ERROR"]

    assert all("%(mrn)s" in s["attributes"]["db.statement"] for s in inserts)
    assert redis_set["attributes"]["db.statement"] == "SET ? ? ? ?"
    # PostgreSQL quotes the duplicate row in its error; the span keeps only the error.
    assert "duplicate key value violates unique constraint" in failed["status_message"]
    assert "(redacted)" in failed["status_message"]
    assert probe.marker not in json.dumps(probe.spans)


def test_logs_are_json_joined_to_the_trace_and_free_of_patient_data(probe: ProbeRun) -> None:
    [error] = [line for line in probe.logs if line["message"] == "duplicate record"]
    [trace_id] = {span["trace_id"] for span in probe.spans}

    assert {"timestamp", "level", "service", "trace_id", "span_id"} <= error.keys()
    assert (error["level"], error["service"], error["trace_id"]) == ("ERROR", "probe", trace_id)
    assert error["grpc_code"] == "ALREADY_EXISTS"
    assert "UniqueViolation" in error["exception"]
    assert probe.marker not in json.dumps(probe.logs)


def test_the_standard_variables_name_the_process(probe: ProbeRun) -> None:
    assert probe.resource["service.name"] == "probe-svc"
    assert probe.resource["deployment.environment"] == "test"
    assert {span["service"] for span in probe.spans} == {"probe-svc"}


async def test_the_sampler_variable_is_honoured(
    sink: tuple[str, Path], llm: FakeLlmServer, make_database: Any, redis_url: str
) -> None:
    run = await _run_probe(
        sink, llm, make_database("telemetry"), redis_url, OTEL_TRACES_SAMPLER="always_off"
    )

    assert run.spans == []
    assert "duplicate record" in [line["message"] for line in run.logs]  # it did run


def test_operators_may_exclude_more_services_but_never_trace_health_checks() -> None:
    excluded = excluded_grpc_services("my.v1.Noisy, grpc.health.v1.Health").split(",")

    assert excluded == [
        "my.v1.Noisy",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ]
    assert excluded_grpc_services("").split(",") == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ]


def test_exported_exceptions_and_statuses_are_redacted() -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(exported)))
    tracer = provider.get_tracer("test")
    failure = 'null value in column "dob"\nDETAIL:  Failing row contains (Zebulon, null).'

    with pytest.raises(ValueError, match="null value"), tracer.start_as_current_span("job"):
        raise ValueError(failure)

    [span] = exported.get_finished_spans()
    [event] = span.events
    assert span.status.status_code is StatusCode.ERROR
    assert "Zebulon" not in str(span.status.description)
    assert "Zebulon" not in str(event.attributes)
    assert "null value in column" in str(event.attributes)


def test_start_up_work_is_one_trace() -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    tracer = provider.get_tracer("test")

    with startup_span(tracer):
        tracer.start_span("INSERT signing_keys").end()

    statement, startup = exported.get_finished_spans()
    assert startup.name == "startup"
    assert statement.parent is not None
    assert statement.parent.span_id == startup.context.span_id
