"""`python -m user` serves; `python -m user migrate` migrates the database to head."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from medstation_platform.logs import configure_logging
from medstation_platform.migrations import upgrade_to_head
from medstation_platform.rpc.runtime import run_service
from medstation_platform.settings import load_settings
from medstation_platform.telemetry import configure_tracing
from user import bootstrap
from user.grpc_api import PUBLIC_METHODS
from user.settings import UserSettings

MIGRATIONS = Path(__file__).parent / "migrations"


async def serve(settings: UserSettings) -> None:
    service = await bootstrap.build(settings)
    await run_service(
        settings,
        domain=bootstrap.DOMAIN,
        bindings=[service.binding],
        verifier=service.verifier,
        public_methods=PUBLIC_METHODS,
        on_stopped=service.close,
    )


def main(argv: list[str]) -> None:
    settings = load_settings(UserSettings)
    configure_logging("user", settings.log_level)
    if argv == ["migrate"]:
        upgrade_to_head(MIGRATIONS, settings.database_url)
        return
    if argv:
        raise SystemExit(f"usage: python -m user [migrate]  (unknown arguments: {argv})")
    configure_tracing("user")  # before any server or channel exists
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main(sys.argv[1:])
