import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from medstation_platform.rpc.server import PortInUse, RunningServer, ServiceBinding, start_server

SLOW_METHOD = "/test.Slow/Wait"


async def _slow(request: bytes, context: object) -> bytes:
    await asyncio.sleep(0.6)
    return b"done"


def _register(server: grpc.aio.Server) -> None:
    handler = grpc.unary_unary_rpc_method_handler(_slow)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("test.Slow", {"Wait": handler}),)
    )


async def _serve() -> RunningServer:
    return await start_server(
        host="127.0.0.1", port=0, bindings=[ServiceBinding("test.Slow", _register)],
        interceptors=[],
    )  # fmt: skip


async def _status(channel: grpc.aio.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
    status: int = response.status
    return status


async def test_serving_is_reported_per_service_and_for_the_server() -> None:
    running = await _serve()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        assert await _status(channel, "test.Slow") == health_pb2.HealthCheckResponse.SERVING
        assert await _status(channel, "") == health_pb2.HealthCheckResponse.SERVING
    await running.stop(0)


async def test_stop_reports_not_serving_drains_and_finishes_in_flight_calls() -> None:
    running = await _serve()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        slow = channel.unary_unary(SLOW_METHOD, None, None)
        in_flight = asyncio.ensure_future(slow(b"", timeout=5))
        await asyncio.sleep(0.1)
        stopping = asyncio.ensure_future(running.stop(grace_seconds=5, drain_seconds=0.3))
        await asyncio.sleep(0.1)
        # Draining: still answering, but telling load balancers to go elsewhere.
        assert await _status(channel, "test.Slow") == health_pb2.HealthCheckResponse.NOT_SERVING
        assert await _status(channel, "") == health_pb2.HealthCheckResponse.NOT_SERVING
        assert await in_flight == b"done"
        await stopping
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await slow(b"", timeout=1)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_taken_port_is_an_error_not_a_shared_listener() -> None:
    first = await _serve()
    try:
        with pytest.raises(PortInUse):
            await start_server(
                host="127.0.0.1", port=first.port,
                bindings=[ServiceBinding("test.Slow", _register)], interceptors=[],
            )  # fmt: skip
    finally:
        await first.stop(0)


def _pending_call_requests() -> list[str]:
    """The names of grpc.aio's tasks waiting for the next call: one for the generic
    handlers, and one per registered method."""
    names = (getattr(task.get_coro(), "__name__", "") for task in asyncio.all_tasks())
    return [name for name in names if name in ("_request_call", "_request_registered_call")]


async def test_every_method_is_served_with_one_pending_call_request() -> None:
    # Generated `add_*_to_server` functions add a generic handler and register the same
    # methods again. grpc.aio keeps a request pending per registered method and waits on
    # all of them for each call it accepts; served by the generic handlers alone, it
    # waits on one, and every method (the service's, health's, reflection's) answers.
    def register_generated_way(server: grpc.aio.Server) -> None:
        handlers = {"Wait": grpc.unary_unary_rpc_method_handler(_slow)}
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("test.Slow", handlers),)
        )
        server.add_registered_method_handlers("test.Slow", handlers)  # type: ignore[attr-defined]

    running = await start_server(
        host="127.0.0.1", port=0, bindings=[ServiceBinding("test.Slow", register_generated_way)],
        interceptors=[],
    )  # fmt: skip
    try:
        await asyncio.sleep(0.05)  # the server's loop arms its requests
        assert _pending_call_requests() == ["_request_call"]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            wait = channel.unary_unary(SLOW_METHOD, None, None)
            assert await wait(b"", timeout=5) == b"done"
            assert await _status(channel, "test.Slow") == health_pb2.HealthCheckResponse.SERVING
    finally:
        await running.stop(0)
