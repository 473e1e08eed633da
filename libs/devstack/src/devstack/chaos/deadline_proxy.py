"""A transparent gRPC relay that records the deadline of every call passing through.

The fault suite puts it between summary, the summary worker and chat on one side and
patient-record on the other, so the calls those services really make are checked: every
one must carry a deadline (`grpc-timeout`), or a dead dependency could hold a caller
forever. Each call becomes one JSON line in `--out`: the method and the seconds it had
left on arrival (null: no deadline). Requests and answers pass through as bytes, with the
caller's token and trace context, within the caller's own deadline; errors come back
with their code, message and details.

`python -m devstack.chaos.deadline_proxy --port P --upstream HOST:PORT --out calls.jsonl`
(health answers SERVING on `""` once it listens).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

# grpc-stubs predates the asyncio health servicer.
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]

if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[bytes, bytes]
    Handler = grpc.RpcMethodHandler[bytes, bytes]
    _GenericHandler = grpc.GenericRpcHandler[bytes, bytes]
else:
    Context = grpc.aio.ServicerContext
    Handler = grpc.RpcMethodHandler
    _GenericHandler = grpc.GenericRpcHandler

# Forwarded as the caller sent them; everything else (grpc-timeout included) is the
# relay's own business.
_FORWARDED_HEADERS = ("authorization", "traceparent", "tracestate")
# Only ever used when a call arrives without a deadline, which is then recorded as such.
_FALLBACK_TIMEOUT_SECONDS = 30.0
PATIENT_SERVICE_PREFIX = "/medstation.patient.v1.PatientRecordService/"


class RecordingRelay(_GenericHandler):
    """Relays every unary call under `prefix` to `channel`; records its deadline."""

    def __init__(self, channel: grpc.aio.Channel, prefix: str, out: IO[str]) -> None:
        self._channel = channel
        self._prefix = prefix
        self._out = out

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        method: str = handler_call_details.method
        if not method.startswith(self._prefix):
            return None
        call = self._channel.unary_unary(method, None, None)

        async def relay(request: bytes, context: Context) -> bytes:
            remaining: float | None = context.time_remaining()
            self._record(method, remaining)
            metadata = tuple(
                (key, value)
                for key, value in context.invocation_metadata() or ()
                if key in _FORWARDED_HEADERS and isinstance(value, str)
            )
            try:
                response: bytes = await call(
                    request,
                    timeout=_FALLBACK_TIMEOUT_SECONDS if remaining is None else remaining,
                    metadata=metadata,
                )
            except grpc.aio.AioRpcError as error:
                # The upstream's error as it was: code, message, details (status-details-bin).
                # (The stubs type trailing metadata as opaque items; they are key/value pairs.)
                trailing = cast(
                    "Sequence[tuple[str, str | bytes]]", tuple(error.trailing_metadata() or ())
                )
                await context.abort(error.code(), error.details() or "", trailing)
            return response

        return grpc.unary_unary_rpc_method_handler(relay)

    def _record(self, method: str, remaining: float | None) -> None:
        self._out.write(json.dumps({"method": method, "remaining": remaining}) + "\n")
        self._out.flush()


def read_calls(path: Path) -> list[dict[str, Any]]:
    """What a relay recorded: {"method", "remaining"} per call, in arrival order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def serve(port: int, upstream: str, out_path: Path) -> None:
    channel = grpc.aio.insecure_channel(
        upstream, options=[("grpc.service_config", '{"loadBalancingConfig":[{"round_robin":{}}]}')]
    )
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    with out_path.open("a", encoding="utf-8") as out:
        server.add_generic_rpc_handlers([RecordingRelay(channel, PATIENT_SERVICE_PREFIX, out)])
        health = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await health.set("", health_pb2.HealthCheckResponse.SERVING)
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await stop.wait()
        await server.stop(1.0)
    await channel.close(None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.chaos.deadline_proxy")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="patient-record's gRPC target")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.upstream, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
