"""Running one service process: metrics, the RPC pipeline, the server, graceful stop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from typing import Any

from opentelemetry.trace import TracerProvider
from prometheus_client import CollectorRegistry

from medstation_platform.auth.tokens import TokenVerifier
from medstation_platform.db import build_engine
from medstation_platform.metrics import build_rpc_metrics, serve_metrics
from medstation_platform.readiness import Dependency, ReadinessProbe, database_dependency
from medstation_platform.rpc.interceptors import PipelineConfig, ServerPipeline
from medstation_platform.rpc.server import (
    RunningServer,
    ServiceBinding,
    serve_until_signalled,
    start_server,
)
from medstation_platform.rpc.server_spans import untraced_services
from medstation_platform.settings import ServiceSettings
from medstation_platform.validation import RequestValidator

BackgroundTask = Callable[[asyncio.Event], Coroutine[Any, Any, None]]

# The readiness probe's own query may take this long before the database counts as down.
_PROBE_STATEMENT_TIMEOUT_MS = 1_000


def build_pipeline(
    *,
    domain: str,
    verifier: TokenVerifier,
    public_methods: Collection[str],
    registry: CollectorRegistry | None = None,
    tracer_provider: TracerProvider | None = None,
) -> ServerPipeline:
    metrics = None if registry is None else build_rpc_metrics(registry)
    return ServerPipeline(
        PipelineConfig(
            domain=domain,
            verifier=verifier,
            public_methods=frozenset(public_methods),
            validator=RequestValidator(),
            metrics=metrics,
            untraced_services=untraced_services(),
            tracer_provider=tracer_provider,
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
    readiness: Sequence[Dependency] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT. `domain` names the service in error details.

    `background` tasks (an outbox relay, say) run beside the server; each gets an event
    that is set at shutdown and must return soon after it. `registry` holds the service's
    own metrics (group commits, outbox...), served with the RPC metrics on the metrics port.

    Readiness (the bindings' names in gRPC health) follows `readiness`; by default the
    service's own database (settings.database_url) over a connection of the probe's own.
    Liveness (`""`) depends on nothing but the process (medstation_platform.readiness).
    """
    registry = registry or CollectorRegistry()
    if settings.metrics_port:
        serve_metrics(registry, settings.grpc_host, settings.metrics_port)
    pipeline = build_pipeline(
        domain=domain, verifier=verifier, public_methods=public_methods, registry=registry
    )
    closers: list[Callable[[], Awaitable[None]]] = []
    if readiness is None:
        probe_engine = build_engine(
            settings.database_url,
            pool_size=1,
            statement_timeout_ms=_PROBE_STATEMENT_TIMEOUT_MS,
        )
        closers.append(probe_engine.dispose)
        readiness = [database_dependency(probe_engine)]
    running: RunningServer = await start_server(
        host=settings.grpc_host,
        port=settings.grpc_port,
        bindings=bindings,
        interceptors=[pipeline],
        # Unready until the first check passes: nothing is routed to a service whose
        # database is not there yet.
        ready=not readiness,
    )
    stopping = asyncio.Event()
    probe = ReadinessProbe(readiness, running.set_ready)
    # Every call checks revocation against the set this task keeps in memory.
    own = (verifier.follow_revocations, probe.run)
    tasks = [asyncio.create_task(task(stopping)) for task in (*background, *own)]
    try:
        await serve_until_signalled(
            running,
            grace_seconds=settings.shutdown_grace_seconds,
            drain_seconds=settings.shutdown_drain_seconds,
        )
    finally:
        stopping.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for close in closers:
            await close()
        await on_stopped()
