"""Outgoing gRPC channels: bounded by the caller's deadline, acting as the caller."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import grpc

from medstation_platform.auth.principal import current_principal
from medstation_platform.rpc.interceptors import remaining_seconds

# Room left for the caller to turn our answer into its own before its deadline.
_DEADLINE_MARGIN_SECONDS = 0.05


def outgoing_timeout(default_seconds: float, requested: float | None = None) -> float:
    """The timeout for a downstream call: never longer than what the caller has left."""
    timeout = default_seconds if requested is None else requested
    remaining = remaining_seconds()
    if remaining is not None:
        timeout = min(timeout, remaining - _DEADLINE_MARGIN_SECONDS)
    return max(timeout, 0.001)


# grpc's classes are generic only in their type stubs: subscripting them at run time fails.
if TYPE_CHECKING:
    _UnaryUnary = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    _UnaryStream = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
else:
    _UnaryUnary = grpc.aio.UnaryUnaryClientInterceptor
    _UnaryStream = grpc.aio.UnaryStreamClientInterceptor


class _CallerContext:
    """Adds the caller's token and bounds the call by the caller's remaining deadline.

    grpc.aio files a channel interceptor under the first kind it is an instance of, so
    each kind of call gets its own subclass (one class for both would never see streams).
    """

    def __init__(self, default_timeout_seconds: float) -> None:
        self._default_timeout = default_timeout_seconds

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        principal = current_principal()
        if principal is not None and "authorization" not in metadata:
            metadata["authorization"] = f"Bearer {principal.token}"
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=outgoing_timeout(self._default_timeout, details.timeout),
            metadata=metadata,
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )


class _UnaryUnaryCallerContext(_CallerContext, _UnaryUnary):
    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(self._details(client_call_details), request)


class _UnaryStreamCallerContext(_CallerContext, _UnaryStream):
    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(self._details(client_call_details), request)


def _method_name(full_name: str) -> dict[str, str]:
    service, _, method = full_name.partition("/")
    return {"service": service, "method": method}


def _service_config(retryable_methods: Sequence[str]) -> str:
    # Round robin over every address the name resolves to: in Kubernetes a headless
    # Service resolves to each pod, and the default (pick_first) would pin one of them.
    config: dict[str, object] = {"loadBalancingConfig": [{"round_robin": {}}]}
    if retryable_methods:
        # Transparent retries for idempotent reads only; writes are never retried here.
        config["methodConfig"] = [
            {
                "name": [_method_name(method) for method in retryable_methods],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    return json.dumps(config)


def open_channel(
    target: str,
    *,
    default_timeout_seconds: float = 5.0,
    retryable_methods: Sequence[str] = (),
) -> grpc.aio.Channel:
    """A channel to another service, with keepalive and the caller's identity/deadline.

    `retryable_methods` ("pkg.Service/Method") are idempotent reads whose UNAVAILABLE
    failures gRPC may retry transparently.
    """
    # One interceptor per kind of call (see _CallerContext); grpc-stubs types the list
    # as "cast or ignore".
    interceptors: list[Any] = [
        _UnaryUnaryCallerContext(default_timeout_seconds),
        _UnaryStreamCallerContext(default_timeout_seconds),
    ]
    return grpc.aio.insecure_channel(
        target,
        options=[
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.enable_retries", 1),
            ("grpc.service_config", _service_config(retryable_methods)),
        ],
        interceptors=interceptors,
    )
