"""The fault suite's instruments, checked on their own: the deadline-recording relay and
the verdicts drawn from what it and the load recorded."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status

from devstack.chaos.deadline_proxy import PATIENT_SERVICE_PREFIX, RecordingRelay
from devstack.chaos.faults import deadline_check
from devstack.chaos.load import Outcomes
from devstack.chaos.report import Result, text_table
from devstack.chaos.runner import fuzz_results

GET = f"{PATIENT_SERVICE_PREFIX}GetPatient"
MISSING = f"{PATIENT_SERVICE_PREFIX}GetNote"


async def _echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    metadata = dict(context.invocation_metadata() or ())
    return request + b"|" + str(metadata.get("authorization", "")).encode()


async def _not_found(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    status = rpc_status.to_status(
        status_pb2.Status(code=code_pb2.NOT_FOUND, message="no such note")
    )
    await context.abort(status.code, status.details, status.trailing_metadata)


@pytest.fixture
async def relay() -> AsyncIterator[tuple[str, io.StringIO]]:
    """A fake patient-record behind the relay; (the relay's address, what it recorded)."""
    upstream = grpc.aio.server()
    handlers = {
        "GetPatient": grpc.unary_unary_rpc_method_handler(_echo),
        "GetNote": grpc.unary_unary_rpc_method_handler(_not_found),
    }
    service = PATIENT_SERVICE_PREFIX.strip("/")
    upstream.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service, handlers)])
    upstream_port = upstream.add_insecure_port("127.0.0.1:0")
    await upstream.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{upstream_port}")
    recorded = io.StringIO()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([RecordingRelay(channel, PATIENT_SERVICE_PREFIX, recorded)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", recorded
    await server.stop(None)
    await channel.close(None)
    await upstream.stop(None)


_TIMEOUT_ROUNDING_SECONDS = 0.05


def _calls(recorded: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in recorded.getvalue().splitlines()]


async def test_the_relay_passes_calls_through_and_records_their_deadlines(
    relay: tuple[str, io.StringIO],
) -> None:
    address, recorded = relay
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(GET, None, None)
        bounded = await call(b"a", timeout=3, metadata=(("authorization", "Bearer t"),))
        unbounded = await call(b"b")

    assert (bounded, unbounded) == (b"a|Bearer t", b"b|")
    first, second = _calls(recorded)
    assert first["method"] == GET
    assert isinstance(first["remaining"], float)
    # The caller's 3 s, as the server reads it: gRPC rounds the timeout it sends up to its
    # unit, so a call can arrive with a few milliseconds more than it left with.
    assert 0 < first["remaining"] <= 3 + _TIMEOUT_ROUNDING_SECONDS
    assert second["remaining"] is None
    verdict = deadline_check(_calls(recorded))
    assert not verdict.passed
    assert verdict.read_errors == 1  # the one call without a deadline


async def test_the_relay_returns_upstream_errors_with_their_details(
    relay: tuple[str, io.StringIO],
) -> None:
    address, _ = relay
    async with grpc.aio.insecure_channel(address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await channel.unary_unary(MISSING, None, None)(b"", timeout=3)

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "no such note"
    status = rpc_status.from_call(raised.value)  # type: ignore[arg-type]
    assert status is not None
    assert status.message == "no such note"


def test_calls_all_bounded_pass_and_none_recorded_fails() -> None:
    assert deadline_check([{"method": GET, "remaining": 4.2}]).passed
    assert not deadline_check([]).passed


def test_outcomes_tell_when_the_last_error_ended() -> None:
    outcomes = Outcomes()
    outcomes.add(0.0, "OK")
    outcomes.add(1.0, "UNAVAILABLE")

    assert (outcomes.requests, outcomes.errors) == (2, 1)
    assert dict(outcomes.kinds()) == {"UNAVAILABLE": 1}
    last = outcomes.last_error_at()
    assert last is not None
    assert last > 1.0


def test_a_missed_requirement_fails_the_scenario_and_shows_in_the_table() -> None:
    result = Result("replica loss", requests=10, read_errors=2)
    result.require(result.read_errors == 0, "2 reads failed")

    assert not result.passed
    assert "FAIL: 2 reads failed" in text_table([result])


def test_the_reliability_report_carries_the_latest_fuzzing_summary(tmp_path: Path) -> None:
    report = tmp_path / "fuzzing.md"
    assert "no fuzzing run recorded" in fuzz_results(report)
    report.write_text(
        "# Fuzzing\n<!-- fuzz-results:start (by make fuzz) -->\nRun: **0 server errors**.\n\n"
        "| account | cases |\n|---|---|\n| clinician | 10 |\n\n"
        "| operation | cases |\n|---|---|\n| GET /x | 3 |\n<!-- fuzz-results:end -->\n"
    )

    summary = fuzz_results(report)

    assert summary.startswith("Run: **0 server errors**.")
    assert "| clinician | 10 |" in summary
    assert "GET /x" not in summary
