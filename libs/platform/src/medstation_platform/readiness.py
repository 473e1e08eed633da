"""Readiness: whether this process can do its work right now, as opposed to being alive.

gRPC health carries both. Liveness is the server's own entry (`""`): it says the process
answers, and never depends on PostgreSQL or Redis, so a database restart cannot get healthy
processes killed. Readiness is the service's own name (what Envoy's health checks and the
Kubernetes readiness probe ask): it follows the process's hard dependencies, its database
by default, so traffic goes elsewhere while the database is unreachable and comes back as
soon as it answers again. Redis is not one of them: every service keeps working without it
(tokens are then checked on their signature and expiry alone, jobs and events wait in
PostgreSQL).

A ReadinessProbe checks its dependencies every `interval` seconds, each within `timeout`,
and reports only changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from opentelemetry.instrumentation.utils import suppress_instrumentation
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 1.0
DEFAULT_TIMEOUT_SECONDS = 1.0

# Told True (ready) or False (not ready) whenever the verdict changes, and once at first.
ReadinessReport = Callable[[bool], Awaitable[None]]


@dataclass(frozen=True)
class Dependency:
    """Something the process cannot serve without; `check` raises when it is unusable."""

    name: str
    check: Callable[[], Awaitable[None]]


def database_dependency(engine: AsyncEngine, name: str = "database") -> Dependency:
    """The database answers a trivial query through `engine`'s pool.

    Pre-ping and invalidation on error (build_engine) make a restarted server usable
    again on the next check.
    """

    async def check() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return Dependency(name, check)


class ReadinessProbe:
    """Checks dependencies periodically and reports the verdict when it changes."""

    def __init__(
        self,
        dependencies: Sequence[Dependency],
        report: ReadinessReport,
        *,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._dependencies = tuple(dependencies)
        self._report = report
        self._interval = interval
        self._timeout = timeout
        self._ready: bool | None = None  # nothing reported yet

    @property
    def ready(self) -> bool | None:
        return self._ready

    async def check_once(self) -> bool:
        """Check every dependency now (concurrently); report if the verdict changed."""
        failures = await asyncio.gather(*(self._failure(d) for d in self._dependencies))
        named = zip(self._dependencies, failures, strict=True)
        failed = {dependency.name: why for dependency, why in named if why}
        ready = not failed
        if ready != self._ready:
            if ready:
                logger.info("ready", extra={"dependencies": [d.name for d in self._dependencies]})
            else:
                logger.warning("not ready", extra={"unavailable": failed})
            self._ready = ready
            await self._report(ready)
        return ready

    async def run(self, stopping: asyncio.Event) -> None:
        """Check until `stopping` is set: at once, then every `interval` seconds."""
        while not stopping.is_set():
            # A check a second would be a one-span trace a second, burying real ones.
            with suppress_instrumentation():
                await self.check_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._interval)

    async def _failure(self, dependency: Dependency) -> str | None:
        """None when usable, else the kind of failure (no message: it may name hosts)."""
        try:
            await asyncio.wait_for(dependency.check(), self._timeout)
        except TimeoutError:
            return f"no answer within {self._timeout:g} s"
        except Exception as error:  # any failure means "not ready"; the kind is logged
            return type(error).__name__
        return None
