"""No outgoing call leaves without a deadline, and none outlives the call that caused it.

An upstream records the deadline (`grpc-timeout`, as `time_remaining()`) of every call it
receives. Calls go through `open_channel`, the only way services reach each other, from
outside any RPC (a worker) and from inside a served RPC whose client set a deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest

from medstation_platform.auth.keys import CachedJwks
from medstation_platform.auth.tokens import TokenVerifier
from medstation_platform.rpc.client import open_channel
from medstation_platform.rpc.runtime import build_pipeline
from medstation_platform.rpc.server import RunningServer, ServiceBinding, start_server

UPSTREAM = "test.Upstream"
FRONT = "test.Front"
DEFAULT_TIMEOUT = 5.0


@dataclass
class Recorded:
    """time_remaining() of every call the upstream received; None means no deadline."""

    remaining: list[float | None] = field(default_factory=list)


def _upstream(recorded: Recorded) -> ServiceBinding:
    async def unary(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        recorded.remaining.append(context.time_remaining())
        return b"ok"

    async def stream(
        request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        recorded.remaining.append(context.time_remaining())
        yield b"ok"

    def register(server: grpc.aio.Server) -> None:
        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Stream": grpc.unary_stream_rpc_method_handler(stream),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(UPSTREAM, handlers),))

    return ServiceBinding(UPSTREAM, register)


KINDS = [
    pytest.param("Unary", id="unary"),
    pytest.param("Stream", id="stream"),
]


async def _call(channel: grpc.aio.Channel, kind: str, requested: float | None = None) -> None:
    if kind == "Unary":
        await channel.unary_unary(f"/{UPSTREAM}/Unary", None, None)(b"", timeout=requested)
        return
    async for _ in channel.unary_stream(f"/{UPSTREAM}/Stream", None, None)(b"", timeout=requested):
        pass


def _front(channel: grpc.aio.Channel, kind: str, requested: float | None) -> ServiceBinding:
    """A service whose handler calls the upstream, as summary and chat call patient-record."""

    async def relay(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        await _call(channel, kind, requested)
        return b"relayed"

    def register(server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(relay)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(FRONT, {"Relay": handler}),)
        )

    return ServiceBinding(FRONT, register)


async def _no_keys() -> bytes:
    return b'{"keys": []}'


@pytest.fixture
def recorded() -> Recorded:
    return Recorded()


@pytest.fixture
async def upstream(recorded: Recorded) -> AsyncIterator[RunningServer]:
    running = await start_server(
        host="127.0.0.1", port=0, bindings=[_upstream(recorded)], interceptors=[]
    )
    yield running
    await running.stop(0)


@pytest.fixture
async def channel(upstream: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    channel = open_channel(f"127.0.0.1:{upstream.port}", default_timeout_seconds=DEFAULT_TIMEOUT)
    yield channel
    await channel.close(None)


async def _relay_through_front(
    channel: grpc.aio.Channel, kind: str, requested: float | None, caller_deadline: float | None
) -> None:
    pipeline = build_pipeline(
        domain="medstation.test",
        verifier=TokenVerifier(CachedJwks(_no_keys), issuer="i", audience="a"),
        public_methods={f"/{FRONT}/Relay"},
    )
    front = await start_server(
        host="127.0.0.1",
        port=0,
        bindings=[_front(channel, kind, requested)],
        interceptors=[pipeline],
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{front.port}") as client:
            relay = client.unary_unary(f"/{FRONT}/Relay", None, None)
            assert await relay(b"", timeout=caller_deadline) == b"relayed"
    finally:
        await front.stop(0)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_call_outside_any_rpc_gets_the_default_deadline(
    channel: grpc.aio.Channel, recorded: Recorded, kind: str
) -> None:
    await _call(channel, kind)

    [remaining] = recorded.remaining
    assert remaining is not None
    # The grpc-timeout header is rounded to its unit on the wire: a few ms either way.
    assert 0 < remaining <= DEFAULT_TIMEOUT + 0.05


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("requested", [None, 60.0], ids=["no timeout", "a longer timeout"])
async def test_a_call_made_while_serving_is_bounded_by_the_callers_deadline(
    channel: grpc.aio.Channel, recorded: Recorded, kind: str, requested: float | None
) -> None:
    caller_deadline = 2.0  # shorter than the channel's default and than `requested`
    await _relay_through_front(channel, kind, requested, caller_deadline)

    [remaining] = recorded.remaining
    assert remaining is not None
    assert 0 < remaining < caller_deadline


@pytest.mark.parametrize("kind", KINDS)
async def test_a_call_made_while_serving_a_call_without_deadline_still_has_one(
    channel: grpc.aio.Channel, recorded: Recorded, kind: str
) -> None:
    await _relay_through_front(channel, kind, None, None)

    [remaining] = recorded.remaining
    assert remaining is not None
    # The grpc-timeout header is rounded to its unit on the wire: a few ms either way.
    assert 0 < remaining <= DEFAULT_TIMEOUT + 0.05
