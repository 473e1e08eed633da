"""`python -m chat` serves; `python -m chat migrate` migrates to head."""

from __future__ import annotations

import sys
from pathlib import Path

from chat import bootstrap
from chat.grpc_api import PUBLIC_METHODS
from chat.settings import ChatSettings
from medstation_platform.entrypoint import run_command_line
from medstation_platform.rpc.runtime import run_service
from medstation_platform.telemetry import startup_span

MIGRATIONS = Path(__file__).parent / "migrations"


async def serve(settings: ChatSettings) -> None:
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
        argv,
        name="chat",
        settings_class=ChatSettings,
        migrations=MIGRATIONS,
        serve=serve,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
