"""The gRPC server every service runs: health, reflection, interceptors, graceful stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

# grpc-stubs predates the asyncio health servicer.
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

logger = logging.getLogger(__name__)

_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class ServiceBinding:
    """One proto service to serve: its full name and how to add its servicer."""

    name: str
    register: Callable[[grpc.aio.Server], None]


class PortInUse(RuntimeError):
    pass


class _GenericHandlersOnly:
    """The server as generated `add_*_to_server` functions see it: their generic handler
    is added, their registered method handlers are not.

    grpc.aio keeps one pending call request per registered method and `asyncio.wait`s on
    all of them for every call it accepts; with a service's dozen methods, health and
    reflection that wait was ~4 % of patient-record's GIL time under load. Served through the
    generic handler alone, one request is pending and each call waits on one future.
    """

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(
        self, handlers: Sequence[grpc.GenericRpcHandler[Any, Any]]
    ) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: object) -> None:
        """Dropped: the same methods arrived in the generic handler just before."""


class RunningServer:
    def __init__(
        self,
        server: grpc.aio.Server,
        health_servicer: health_aio.HealthServicer,
        names: Sequence[str],
        port: int,
    ) -> None:
        self._server = server
        self._health = health_servicer
        self._names = names
        self._stopping = False
        self.port = port

    async def set_ready(self, ready: bool) -> None:
        """Readiness: the named services SERVING or NOT_SERVING; liveness (`""`) untouched.

        Ignored once stopping: a dependency coming back must not undo the drain.
        """
        if self._stopping:
            return
        status = _SERVING if ready else _NOT_SERVING
        for name in self._names:
            await self._health.set(name, status)

    async def stop(self, grace_seconds: float, drain_seconds: float = 0.0) -> None:
        """Report NOT_SERVING, keep serving while load balancers notice, then stop.

        During `drain_seconds` health checks see NOT_SERVING and traffic moves elsewhere;
        then new calls are refused and in-flight ones get `grace_seconds` to finish.
        """
        self._stopping = True
        for name in (*self._names, ""):
            await self._health.set(name, _NOT_SERVING)
        if drain_seconds > 0:
            await asyncio.sleep(drain_seconds)
        await self._server.stop(grace_seconds)

    async def wait(self) -> None:
        await self._server.wait_for_termination()


async def start_server(
    *,
    host: str,
    port: int,
    bindings: Sequence[ServiceBinding],
    interceptors: Sequence[grpc.aio.ServerInterceptor[Any, Any]],
    ready: bool = True,
) -> RunningServer:
    """Serve `bindings` with health and reflection.

    Liveness (`""`) is SERVING from the start; the named services start as `ready` says
    (False: NOT_SERVING until `set_ready(True)`, when a readiness probe decides).
    """
    server = grpc.aio.server(
        interceptors=list(interceptors),
        options=[
            # Without this a second process can bind the same port and silently take
            # half the traffic; we want a clear failure instead.
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ],
    )
    generic_only = cast(grpc.aio.Server, _GenericHandlersOnly(server))
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, generic_only)
    names = [binding.name for binding in bindings]
    for binding in bindings:
        binding.register(generic_only)
    reflection.enable_server_reflection(
        (*names, health.SERVICE_NAME, reflection.SERVICE_NAME), generic_only
    )
    try:
        bound_port = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as error:
        raise PortInUse(f"cannot listen on {host}:{port}: is the port already taken?") from error
    if bound_port == 0:
        raise PortInUse(f"cannot listen on {host}:{port}: is the port already taken?")
    await server.start()
    await health_servicer.set("", _SERVING)
    for name in names:
        await health_servicer.set(name, _SERVING if ready else _NOT_SERVING)
    return RunningServer(server, health_servicer, names, bound_port)


async def serve_until_signalled(
    running: RunningServer,
    *,
    grace_seconds: float,
    drain_seconds: float = 0.0,
) -> None:
    """Serve until SIGTERM/SIGINT, then drain and stop gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    logger.info("serving", extra={"port": running.port})
    await stop.wait()
    logger.info(
        "shutting down", extra={"drain_seconds": drain_seconds, "grace_seconds": grace_seconds}
    )
    await running.stop(grace_seconds, drain_seconds)
    logger.info("stopped")
