"""One statement at a time on a pool of autocommit psycopg connections.

The unit of work (medstation_platform.db) is for use cases that need a transaction:
several statements, all or none. Most requests need one statement: a point read, or a
write that a single statement makes atomic by itself. For those, checking a connection
out of SQLAlchemy's pool, switching it to autocommit, handing it back and resetting it
costs about 130 µs of CPU around a 60 µs statement; a psycopg pool whose connections
are always in autocommit costs about 10 µs. Statements are `HotQuery`s: compiled from
SQLAlchemy Core once, prepared by PostgreSQL on first use, traced like any other.

The pool is the service's second, smaller set of connections to its own database (the
engine keeps the first, for transactions and migrations): size both together within
what the database allows (`max_connections`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy.engine import make_url

from medstation_platform.db import DatabaseUnavailable
from medstation_platform.hot_sql import HotQuery, run_on_driver
from medstation_platform.settings import ServiceSettings

logger = logging.getLogger(__name__)

# How long a request waits for a free connection before it is told to retry (UNAVAILABLE).
CHECKOUT_TIMEOUT_SECONDS = 5.0
_CONNECT_TIMEOUT_SECONDS = 5


def psycopg_conninfo(database_url: str) -> str:
    """A `postgresql+psycopg://` SQLAlchemy URL as a libpq connection string.

    Built from the URL's parts, not re-rendered as a URL: libpq would not decode a
    percent-encoded space, say, in the password a URL carries.
    """
    url = make_url(database_url)
    parts = {
        "host": url.host,
        "port": url.port,
        "dbname": url.database,
        "user": url.username,
        "password": url.password,
        **{key: value for key, value in url.query.items() if isinstance(value, str)},
    }
    return make_conninfo("", **{key: value for key, value in parts.items() if value is not None})


class StatementPool:
    """Runs single statements, each on a connection of its own for its duration."""

    def __init__(
        self,
        database_url: str,
        *,
        size: int,
        statement_timeout_ms: int,
        name: str = "statements",
    ) -> None:
        self._pool = AsyncConnectionPool(
            psycopg_conninfo(database_url),
            min_size=size,
            max_size=size,
            name=name,
            open=False,
            timeout=CHECKOUT_TIMEOUT_SECONDS,
            kwargs={
                "autocommit": True,
                "connect_timeout": _CONNECT_TIMEOUT_SECONDS,
                "options": f"-c statement_timeout={statement_timeout_ms}",
            },
        )
        self._checks: set[asyncio.Task[None]] = set()

    @classmethod
    def for_service(cls, settings: ServiceSettings) -> StatementPool:
        """The pool a service's settings size (`database_statement_pool_size`)."""
        return cls(
            settings.database_url,
            size=settings.database_statement_pool_size,
            statement_timeout_ms=settings.database_statement_timeout_ms,
        )

    @property
    def name(self) -> str:
        return self._pool.name

    async def open(self) -> None:
        """Starts opening connections in the background; never waits for the database, so
        a service can start (and report NOT_SERVING) while PostgreSQL is still away."""
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close()

    def stats(self) -> Mapping[str, int]:
        """psycopg_pool's counters: pool_size, pool_available, requests_waiting, …"""
        return self._pool.get_stats()

    async def fetch_first(self, query: HotQuery, values: Mapping[str, object]) -> Any | None:
        """The first row (a named tuple) of `query` run with `values`, or None."""
        async with self.connection() as driver:
            return await run_on_driver(driver, query, values, fetch=True)

    async def fetch_all(
        self, query: HotQuery, values: Mapping[str, object], *, traced: bool = True
    ) -> list[Any]:
        async with self.connection() as driver:
            rows: list[Any] = await run_on_driver(driver, query, values, fetch="all", traced=traced)
            return rows

    async def execute(self, query: HotQuery, values: Mapping[str, object]) -> None:
        """Runs a statement that returns no rows; constraint violations surface as
        psycopg's own errors (`psycopg.errors.UniqueViolation`…), their `diag` naming the
        constraint."""
        async with self.connection() as driver:
            await run_on_driver(driver, query, values, fetch=False)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection in autocommit for a few statements; each commits on its own."""
        try:
            async with self._pool.connection() as driver:
                try:
                    yield driver
                except DatabaseUnavailable:
                    if driver.broken:
                        # A restart killed every connection opened before it: check the
                        # idle ones now rather than fail one request with each of them.
                        self._check_idle_connections()
                    raise
        except PoolTimeout as error:
            raise DatabaseUnavailable() from error
        except psycopg.OperationalError as error:  # connecting failed
            raise DatabaseUnavailable() from error

    def _check_idle_connections(self) -> None:
        if self._checks:
            return  # one check at a time is enough
        task = asyncio.get_running_loop().create_task(self._pool.check())
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)
