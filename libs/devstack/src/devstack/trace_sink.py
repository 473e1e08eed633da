"""A local OTLP/gRPC trace receiver, so `make run` needs no collector.

Envoy and every Python process export spans here (OTEL_EXPORTER_OTLP_ENDPOINT); each span
is kept in a bounded window and appended to a JSON-lines file that `make traces` reads
from another process. It also answers `grpc.health.v1.Health/Check`, for readiness.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from devstack.span_records import records_from_request
from devstack.trace_store import TraceLog, TraceStore, span_line

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
HEALTH_SERVICE = "grpc.health.v1.Health"
DEFAULT_SINK_PORT = 4317
_MAX_MESSAGE_BYTES = 16 * 1024 * 1024

Context = grpc.aio.ServicerContext[object, object]


class TraceSink:
    """Receives OTLP export calls; records every span in the store and the log."""

    def __init__(self, store: TraceStore, log: TraceLog | None = None) -> None:
        self.store = store
        self._log = log

    async def export(
        self, request: ExportTraceServiceRequest, _context: Context
    ) -> ExportTraceServiceResponse:
        lines = []
        for record in records_from_request(request):
            line = span_line(record)
            self.store.add(record, len(line))
            lines.append(line)
        if self._log is not None and lines:
            self._log.append(lines)
        return ExportTraceServiceResponse()

    def handlers(self) -> list[grpc.GenericRpcHandler[Any, Any]]:
        export = grpc.unary_unary_rpc_method_handler(
            self.export,
            request_deserializer=ExportTraceServiceRequest.FromString,
            response_serializer=ExportTraceServiceResponse.SerializeToString,
        )
        check = grpc.unary_unary_rpc_method_handler(
            _serving,
            request_deserializer=health_pb2.HealthCheckRequest.FromString,
            response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
        )
        return [
            grpc.method_handlers_generic_handler(TRACE_SERVICE, {"Export": export}),
            grpc.method_handlers_generic_handler(HEALTH_SERVICE, {"Check": check}),
        ]


async def _serving(
    _request: health_pb2.HealthCheckRequest, _context: Context
) -> health_pb2.HealthCheckResponse:
    return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


class SinkPortInUseError(RuntimeError):
    pass


async def start_trace_sink(sink: TraceSink, host: str, port: int) -> tuple[grpc.aio.Server, int]:
    """Start serving `sink`; returns the server and the bound port (useful with port 0)."""
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 0),  # else a second sink binds silently and splits the spans
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
        ]
    )
    server.add_generic_rpc_handlers(sink.handlers())
    message = f"trace sink cannot listen on {host}:{port}: is the port already taken?"
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as error:
        raise SinkPortInUseError(message) from error
    if bound == 0:  # some grpcio versions report a failed bind this way instead
        raise SinkPortInUseError(message)
    await server.start()
    return server, bound


async def serve_until_signalled(host: str, port: int, path: Path) -> None:
    """Run a sink writing to `path` until SIGTERM or SIGINT."""
    sink = TraceSink(TraceStore(), TraceLog(path))
    server, bound = await start_trace_sink(sink, host, port)
    print(f"trace sink listening on {host}:{bound}, writing {path}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(grace=1.0)
