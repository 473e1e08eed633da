"""A service's command line: `python -m <service>` serves, `... migrate` migrates to head."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from medstation_platform.logs import configure_logging
from medstation_platform.migrations import upgrade_to_head
from medstation_platform.settings import SettingsT, load_settings
from medstation_platform.telemetry import configure_tracing


def run_command_line(
    argv: Sequence[str],
    *,
    name: str,
    settings_class: type[SettingsT],
    migrations: Path,
    serve: Callable[[SettingsT], Coroutine[Any, Any, None]],
) -> None:
    """Settings first (bad configuration stops here, naming the variables), then the command.

    `name` is the service's name in logs and, unless OTEL_SERVICE_NAME says otherwise, in
    traces.
    """
    settings = load_settings(settings_class)
    if argv and list(argv) != ["migrate"]:
        raise SystemExit(f"{name}: the only command is `migrate` (got {' '.join(argv)!r})")
    configure_logging(name, settings.log_level)
    if argv:
        upgrade_to_head(migrations, settings.database_url)
        return
    configure_tracing(name)  # before any server or channel exists, or they go untraced
    asyncio.run(serve(settings))
