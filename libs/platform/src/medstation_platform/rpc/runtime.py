"""Running one service process: metrics, the RPC pipeline, the server, graceful stop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from medstation_platform.auth.tokens import TokenVerifier
from medstation_platform.metrics import build_rpc_metrics, serve_metrics
from medstation_platform.rpc.interceptors import PipelineConfig, ServerPipeline
from medstation_platform.rpc.server import (
    RunningServer,
    ServiceBinding,
    serve_until_signalled,
    start_server,
)
from medstation_platform.settings import ServiceSettings
from medstation_platform.validation import RequestValidator

BackgroundTask = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def build_pipeline(
    *,
    domain: str,
    verifier: TokenVerifier,
    public_methods: Collection[str],
    registry: CollectorRegistry | None = None,
) -> ServerPipeline:
    metrics = None if registry is None else build_rpc_metrics(registry)
    return ServerPipeline(
        PipelineConfig(
            domain=domain,
            verifier=verifier,
            public_methods=frozenset(public_methods),
            validator=RequestValidator(),
            metrics=metrics,
        )
    )


async def run_service(
    settings: ServiceSettings,
    *,
    domain: str,
    bindings: Sequence[ServiceBinding],
    verifier: TokenVerifier,
    public_methods: Collection[str],
    on_stopped: Callable[[], Awaitable[None]],
    background: Sequence[BackgroundTask] = (),
    registry: CollectorRegistry | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT. `domain` names the service in error details.

    `background` tasks (an outbox relay, say) run beside the server; each gets an event
    that is set at shutdown and must return soon after it. `registry` holds the service's
    own metrics (cache, outbox...), served with the RPC metrics on the metrics port.
    """
    registry = registry or CollectorRegistry()
    if settings.metrics_port:
        serve_metrics(registry, settings.grpc_host, settings.metrics_port)
    pipeline = build_pipeline(
        domain=domain, verifier=verifier, public_methods=public_methods, registry=registry
    )
    running: RunningServer = await start_server(
        host=settings.grpc_host,
        port=settings.grpc_port,
        bindings=bindings,
        interceptors=[pipeline],
    )
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(task(stopping)) for task in background]
    try:
        await serve_until_signalled(
            running,
            grace_seconds=settings.shutdown_grace_seconds,
            drain_seconds=settings.shutdown_drain_seconds,
        )
    finally:
        stopping.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await on_stopped()
