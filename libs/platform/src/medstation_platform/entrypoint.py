"""A service's command line: `python -m <service>` serves, `... migrate` migrates to head.

A service may add commands of its own (the summary service's `worker`), each an async
function of the settings that runs with logging and tracing set up like serving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

import uvloop

from medstation_platform.logs import configure_logging
from medstation_platform.memory import collect_garbage_for_throughput, return_freed_large_blocks
from medstation_platform.settings import SettingsT, load_settings
from medstation_platform.telemetry import configure_tracing

Command = Callable[[SettingsT], Coroutine[Any, Any, None]]


def run_command_line(
    argv: Sequence[str],
    *,
    name: str,
    settings_class: type[SettingsT],
    migrations: Path,
    serve: Command[SettingsT],
    commands: Mapping[str, tuple[str, Command[SettingsT]]] | None = None,
) -> None:
    """Settings first (bad configuration stops here, naming the variables), then the command.

    `name` is the service's name in logs and, unless OTEL_SERVICE_NAME says otherwise, in
    traces. `commands` maps an extra command word to (the process name it logs and
    traces as, the coroutine it runs).
    """
    settings = load_settings(settings_class)
    extra = dict(commands or {})
    if len(argv) > 1 or (argv and argv[0] != "migrate" and argv[0] not in extra):
        accepted = ", ".join(f"`{word}`" for word in ["migrate", *extra])
        raise SystemExit(f"{name}: the commands are {accepted} (got {' '.join(argv)!r})")
    if argv and argv[0] == "migrate":
        # Imported here only: Alembic (with Mako) is ~10 MB of a serving process's memory.
        from medstation_platform.migrations import upgrade_to_head

        configure_logging(name, settings.log_level)
        upgrade_to_head(migrations, settings.database_url)
        return
    process_name, run = extra[argv[0]] if argv else (name, serve)
    return_freed_large_blocks()
    collect_garbage_for_throughput()
    configure_logging(process_name, settings.log_level)
    configure_tracing(process_name)  # before any server or channel exists, or they go untraced
    # uvloop: the event loop's own work (sockets, callbacks, timers) is a large share of
    # a cheap RPC's CPU, and libuv does it in C.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(settings))
