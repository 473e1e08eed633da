"""Is a MedStation stack up where we were told? Asked once, quickly, before seeding or a bench.

Tools that load or measure a running stack fail fast with a sentence that says what to
do (`make run`), instead of a gRPC stack trace after their first deadline expires.
"""

from __future__ import annotations

import grpc
import grpc.aio
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

_PROBE_TIMEOUT_SECONDS = 3.0
_START_HINT = (
    "Start the stack with `make run` (it stays in the foreground: use another terminal) "
    "and try again."
)


class StackNotRunningError(RuntimeError):
    """A part of the stack did not answer; the message names it and how to start it."""


async def require_gateway(gateway_url: str, timeout: float = _PROBE_TIMEOUT_SECONDS) -> None:  # noqa: ASYNC109  # one probe's budget
    """The gateway's /healthz answers 200 (so every routed service is SERVING)."""
    url = f"{gateway_url.rstrip('/')}/healthz"
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(url)
    except httpx.HTTPError as error:
        raise StackNotRunningError(
            f"the gateway is not answering at {url} ({type(error).__name__}). {_START_HINT}"
        ) from error
    if response.status_code != httpx.codes.OK:
        raise StackNotRunningError(
            f"the gateway at {url} answers {response.status_code}: a service is not serving "
            f"(see .run/logs/). {_START_HINT}"
        )


async def service_status(
    address: str,
    proto_service: str,
    timeout: float = _PROBE_TIMEOUT_SECONDS,  # noqa: ASYNC109  # one probe's budget
) -> str:
    """ "SERVING", another health status name, or the gRPC error code name if none answered."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = await stub.Check(
                health_pb2.HealthCheckRequest(service=proto_service), timeout=timeout
            )
        except grpc.aio.AioRpcError as error:
            return error.code().name
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


async def require_service(
    name: str,
    address: str,
    proto_service: str,
    timeout: float = _PROBE_TIMEOUT_SECONDS,  # noqa: ASYNC109  # one probe's budget
) -> None:
    status = await service_status(address, proto_service, timeout)
    if status != "SERVING":
        raise StackNotRunningError(
            f"the {name} service is not serving at {address} (health: {status}). {_START_HINT}"
        )
