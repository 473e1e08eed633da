"""`python -m patient_record` serves; `python -m patient_record migrate` migrates to head."""

from __future__ import annotations

import sys
from pathlib import Path

from medstation_platform.entrypoint import run_command_line
from medstation_platform.rpc.runtime import run_service
from medstation_platform.telemetry import startup_span
from patient_record import bootstrap
from patient_record.grpc_api import PUBLIC_METHODS
from patient_record.settings import PatientSettings

MIGRATIONS = Path(__file__).parent / "migrations"


async def serve(settings: PatientSettings) -> None:
    with startup_span():
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
    run_command_line(
        argv,
        name="patient-record",
        settings_class=PatientSettings,
        migrations=MIGRATIONS,
        serve=serve,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
