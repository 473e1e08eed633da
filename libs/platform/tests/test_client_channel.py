"""Outgoing channels spread calls over every address of a service, not just the first."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from medstation_platform.rpc.client import open_channel

_METHOD = "/test.Echo/WhoAmI"


def _identity(port: int) -> grpc.GenericRpcHandler:  # type: ignore[type-arg]
    async def who_am_i(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return str(port).encode()

    handler = grpc.unary_unary_rpc_method_handler(who_am_i)
    return grpc.method_handlers_generic_handler("test.Echo", {"WhoAmI": handler})


@pytest.fixture
async def two_replicas() -> AsyncIterator[list[int]]:
    servers, ports = [], []
    for _ in range(2):
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        port = server.add_insecure_port("127.0.0.1:0")
        server.add_generic_rpc_handlers([_identity(port)])
        await server.start()
        servers.append(server)
        ports.append(port)
    yield ports
    for server in servers:
        await server.stop(None)


async def test_calls_are_balanced_over_every_resolved_address(two_replicas: list[int]) -> None:
    target = "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in two_replicas)
    channel = open_channel(target)
    try:
        call = channel.unary_unary(_METHOD, None, None)
        answered = {await call(b"", timeout=5) for _ in range(20)}
    finally:
        await channel.close(None)

    assert answered == {str(port).encode() for port in two_replicas}
