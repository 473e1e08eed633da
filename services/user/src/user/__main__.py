"""`python -m user` serves; `python -m user migrate` migrates the database to head."""

from __future__ import annotations

import sys
from pathlib import Path

from medstation_platform.entrypoint import run_command_line
from medstation_platform.rpc.runtime import run_service
from medstation_platform.telemetry import startup_span
from user import bootstrap
from user.grpc_api import PUBLIC_METHODS
from user.settings import UserSettings

MIGRATIONS = Path(__file__).parent / "migrations"


async def serve(settings: UserSettings) -> None:
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


def main(argv: list[str]) -> None:
    run_command_line(
        argv, name="user", settings_class=UserSettings, migrations=MIGRATIONS, serve=serve
    )


if __name__ == "__main__":
    main(sys.argv[1:])
