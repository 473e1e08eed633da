"""The server pipeline as a client sees it: errors mapped, internals never leaked."""

import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from prometheus_client import CollectorRegistry

from medstation_platform import errors
from medstation_platform.auth.keys import CachedJwks
from medstation_platform.auth.tokens import TokenVerifier
from medstation_platform.rpc.runtime import build_pipeline
from medstation_platform.rpc.server import RunningServer, ServiceBinding, start_server


class ChartNotFound(errors.NotFound):
    reason = "CHART_NOT_FOUND"


async def _not_found(request: bytes, context: object) -> bytes:
    raise ChartNotFound()


async def _bug(request: bytes, context: object) -> bytes:
    raise RuntimeError("SELECT secret FROM patients WHERE host='db-7.internal'")


async def _echo(request: bytes, context: object) -> bytes:
    return request


async def _lookup(request: bytes, context: object) -> bytes:
    if request != b"found":
        raise ChartNotFound()
    return request


def _register(server: grpc.aio.Server) -> None:
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(behaviour)
        for name, behaviour in (
            ("NotFound", _not_found),
            ("Bug", _bug),
            ("Echo", _echo),
            ("Lookup", _lookup),
        )
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("test.Pipeline", handlers),)
    )


async def _no_keys() -> bytes:
    return b'{"keys": []}'


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    verifier = TokenVerifier(CachedJwks(_no_keys), issuer="i", audience="a")
    public = {"/test.Pipeline/NotFound", "/test.Pipeline/Bug"}
    pipeline = build_pipeline(domain="medstation.test", verifier=verifier, public_methods=public)
    running = await start_server(
        host="127.0.0.1", port=0, bindings=[ServiceBinding("test.Pipeline", _register)],
        interceptors=[pipeline],
    )  # fmt: skip
    yield running
    await running.stop(0)


async def _call(running: RunningServer, method: str) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await channel.unary_unary(f"/test.Pipeline/{method}", None, None)(b"x", timeout=5)
    return failed.value


def _error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]  # aio errors are calls too
    assert isinstance(status, status_pb2.Status)
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info


async def test_a_domain_error_reaches_the_client_with_its_code_and_reason(
    server: RunningServer,
) -> None:
    error = await _call(server, "NotFound")
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert _error_info(error).reason == "CHART_NOT_FOUND"


async def test_a_bug_is_internal_and_reveals_nothing(server: RunningServer) -> None:
    error = await _call(server, "Bug")
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == "internal error"
    assert "secret" not in str(error.trailing_metadata())
    assert _error_info(error).reason == "INTERNAL"


async def test_a_private_method_without_a_token_is_unauthenticated(
    server: RunningServer,
) -> None:
    error = await _call(server, "Echo")
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _error_info(error).reason == "TOKEN_MISSING"


async def test_each_call_is_counted_and_timed_by_method_and_code() -> None:
    registry = CollectorRegistry()
    verifier = TokenVerifier(CachedJwks(_no_keys), issuer="i", audience="a")
    public = {"/test.Pipeline/Lookup", "/test.Pipeline/Bug"}
    pipeline = build_pipeline(
        domain="medstation.test", verifier=verifier, public_methods=public, registry=registry
    )
    running = await start_server(
        host="127.0.0.1", port=0, bindings=[ServiceBinding("test.Pipeline", _register)],
        interceptors=[pipeline],
    )  # fmt: skip
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            lookup = channel.unary_unary("/test.Pipeline/Lookup", None, None)
            for request in (b"found", b"missing", b"found"):
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await lookup(request, timeout=5)
        await _call(running, "Bug")
        await _call(running, "Echo")
    finally:
        await running.stop(0)

    def handled(method: str, code: str) -> float | None:
        labels = {"grpc_service": "test.Pipeline", "grpc_method": method, "grpc_code": code}
        return registry.get_sample_value("grpc_server_handled_total", labels)

    assert (handled("Lookup", "OK"), handled("Lookup", "NOT_FOUND")) == (2, 1)
    assert handled("Bug", "INTERNAL") == 1
    assert handled("Echo", "UNAUTHENTICATED") == 1
    assert handled("Bug", "OK") is None
    timed = {"grpc_service": "test.Pipeline", "grpc_method": "Lookup"}
    assert registry.get_sample_value("grpc_server_handling_seconds_count", timed) == 3
