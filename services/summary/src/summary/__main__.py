"""`python -m summary` serves; `... worker` runs the job worker; `... migrate` migrates to head."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from medstation_platform.entrypoint import run_command_line
from medstation_platform.metrics import serve_metrics
from medstation_platform.rpc.runtime import run_service
from medstation_platform.rpc.server import serve_until_signalled, start_server
from medstation_platform.telemetry import startup_span
from summary import bootstrap
from summary.grpc_api import PUBLIC_METHODS
from summary.settings import SummarySettings

MIGRATIONS = Path(__file__).parent / "migrations"


async def serve(settings: SummarySettings) -> None:
    with startup_span():
        service = await bootstrap.build(settings)
    await run_service(
        settings,
        domain=bootstrap.DOMAIN,
        bindings=[service.binding],
        verifier=service.verifier,
        public_methods=PUBLIC_METHODS,
        on_stopped=service.close,
        registry=service.registry,
    )


async def run_worker(settings: SummarySettings) -> None:
    """The worker serves no API: only gRPC health (on `""`) on its own port, for the dev
    stack's and Kubernetes' probes, and its metrics."""
    with startup_span():
        process = await bootstrap.build_worker(settings)
    if settings.metrics_port:
        serve_metrics(process.registry, settings.grpc_host, settings.metrics_port)
    running = await start_server(
        host=settings.grpc_host, port=settings.grpc_port, bindings=[], interceptors=[]
    )
    stopping = asyncio.Event()
    work = asyncio.create_task(process.worker.run(stopping))
    try:
        await serve_until_signalled(
            running,
            grace_seconds=settings.shutdown_grace_seconds,
            drain_seconds=0,  # nothing routes traffic to a worker: no need to drain
        )
    finally:
        stopping.set()
        await asyncio.gather(work, return_exceptions=True)
        await process.close()


def main(argv: list[str]) -> None:
    run_command_line(
        argv,
        name="summary",
        settings_class=SummarySettings,
        migrations=MIGRATIONS,
        serve=serve,
        commands={"worker": ("summary-worker", run_worker)},
    )


if __name__ == "__main__":
    main(sys.argv[1:])
