"""Readiness by asking: gRPC health checks and HTTP readiness endpoints, polled to a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import grpc
import grpc.aio
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

_SERVING = health_pb2.HealthCheckResponse.SERVING
_POLL_SECONDS = 0.05


class NotReadyError(TimeoutError):
    """The thing did not report ready before the deadline; says what it last answered."""


def wait_for_grpc_health(addr: str, service: str = "", timeout: float = 30.0) -> None:
    """Block until `grpc.health.v1.Health/Check(service)` at `addr` answers SERVING."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with grpc.insecure_channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
            except grpc.RpcError as error:
                last = f"{error.code().name}: {error.details()}"
            else:
                if response.status == _SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            time.sleep(_POLL_SECONDS)
    raise NotReadyError(
        f"gRPC health of {service or '(server)'} at {addr}: {last} after {timeout} s"
    )


async def wait_for_grpc_health_async(
    addr: str,
    service: str = "",
    timeout: float = 30.0,  # noqa: ASYNC109  # a poll budget: expiry reports the last answer
    give_up: Callable[[], str | None] = lambda: None,
) -> None:
    """Like wait_for_grpc_health, without blocking the event loop.

    `give_up` is asked between attempts; a message from it (say, "process exited") ends
    the wait at once with that reason.
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if reason := give_up():
                raise NotReadyError(f"{addr}: {reason}")
            try:
                response = await stub.Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=1.0
                )
            except grpc.aio.AioRpcError as error:
                last = f"{error.code().name}: {error.details()}"
            else:
                if response.status == _SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            await asyncio.sleep(_POLL_SECONDS)
    raise NotReadyError(
        f"gRPC health of {service or '(server)'} at {addr}: {last} after {timeout} s"
    )


async def wait_for_http_ok(
    url: str,
    timeout: float = 30.0,  # noqa: ASYNC109  # a poll budget: expiry reports the last answer
    give_up: Callable[[], str | None] = lambda: None,
) -> None:
    """Poll `url` until it answers 200 (Envoy's admin /ready answers LIVE then)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    async with httpx.AsyncClient(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if reason := give_up():
                raise NotReadyError(f"{url}: {reason}")
            try:
                response = await client.get(url)
            except httpx.HTTPError as error:
                last = f"{type(error).__name__}: {error}"
            else:
                if response.status_code == httpx.codes.OK:
                    return
                last = f"HTTP {response.status_code} {response.text.strip()[:80]}"
            await asyncio.sleep(_POLL_SECONDS)
    raise NotReadyError(f"{url}: {last} after {timeout} s")
