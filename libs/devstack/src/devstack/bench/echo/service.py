"""`python -m devstack.bench.echo.service --port N --descriptor-set FILE`: the echo server.

A bare `grpc.aio` server, as a MedStation service is before any of its own work: one
process, the default event loop, health checking (the gateway's active health check
asks for the echo service by name), and one unary method. No interceptors, no database,
no validation: what it costs is the floor a Python gRPC service cannot go below here.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence
from pathlib import Path

import grpc
import grpc.aio
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]

from devstack.bench.echo.descriptors import ECHO_METHOD, ECHO_SERVICE, echo_types

_STOP_GRACE_SECONDS = 1.0
_Context = grpc.aio.ServicerContext[Message, Message]


async def serve(port: int, descriptor_set: Path, host: str = "127.0.0.1") -> None:
    types = echo_types(descriptor_set)

    async def echo(request: Message, context: _Context) -> Message:
        # EchoResponse has EchoRequest's one field under the same number and type, so the
        # request serializes to exactly the response's bytes.
        return request

    handler = grpc.unary_unary_rpc_method_handler(
        echo,
        request_deserializer=types.request.FromString,
        response_serializer=_serialize,
    )
    # A second server on a taken port would otherwise bind silently (SO_REUSEPORT).
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(ECHO_SERVICE, {ECHO_METHOD: handler}),)
    )
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", ECHO_SERVICE):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(_STOP_GRACE_SECONDS)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.bench.echo.service")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--descriptor-set", type=Path, required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.descriptor_set))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
