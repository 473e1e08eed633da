"""`python -m patient_record` serves; `python -m patient_record migrate` migrates to head."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from medstation_platform.logs import configure_logging
from medstation_platform.migrations import upgrade_to_head
from medstation_platform.rpc.runtime import run_service
from medstation_platform.settings import load_settings
from medstation_platform.telemetry import configure_tracing
from patient_record import bootstrap
from patient_record.grpc_api import PUBLIC_METHODS
from patient_record.settings import PatientSettings

MIGRATIONS = Path(__file__).parent / "migrations"


async def serve(settings: PatientSettings) -> None:
    service = await bootstrap.build(settings)
    await run_service(
        settings,
        domain=bootstrap.DOMAIN,
        bindings=[service.binding],
        verifier=service.verifier,
        public_methods=PUBLIC_METHODS,
        on_stopped=service.close,
        # Events leave through the outbox: the relay publishes what committed.
        background=[service.relay.run],
        registry=service.registry,
    )


def main(argv: list[str]) -> None:
    settings = load_settings(PatientSettings)
    configure_logging("patient-record", settings.log_level)
    if argv == ["migrate"]:
        upgrade_to_head(MIGRATIONS, settings.database_url)
        return
    if argv:
        raise SystemExit(f"usage: python -m patient_record [migrate]  (unknown arguments: {argv})")
    configure_tracing("patient-record")  # before any server or channel exists
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main(sys.argv[1:])
