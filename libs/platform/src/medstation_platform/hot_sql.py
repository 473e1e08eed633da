"""Hot statements, run on the unit of work's psycopg connection instead of through
SQLAlchemy's execution path.

A point read through SQLAlchemy's async engine costs about 450 µs of CPU on this
machine's class of hardware; the same statement sent by psycopg itself, about 70 µs.
The difference is SQLAlchemy's per-execution work (cache key, compiled-statement
lookup, result metadata, the greenlet hop into its sync core), not the database. For the
few statements every request runs, that is most of a request's database cost.

A `HotQuery` is written once in SQLAlchemy Core with named `bindparam`s and compiled at
import to psycopg's SQL; executing it uses the connection (and so the transaction, or
autocommit) the unit of work already holds, traces it like the SQLAlchemy
instrumentation does (statement text only, never the parameters), and maps connection
failures to DatabaseUnavailable like the unit of work. On a connection in autocommit
it runs as a statement prepared once per connection on libpq directly
(`medstation_platform.libpq_execution`), in a transaction through psycopg's cursor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, cast

import psycopg
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from psycopg.rows import namedtuple_row
from sqlalchemy.dialects.postgresql.psycopg import PGDialectAsync_psycopg
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from medstation_platform import libpq_execution
from medstation_platform.db import DatabaseUnavailable

_DIALECT = PGDialectAsync_psycopg()  # type: ignore[no-untyped-call]
# The same statement with `$n` placeholders, for libpq_execution's prepared statements.
_NUMBERED_DIALECT = PGDialectAsync_psycopg(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]
_tracer = trace.get_tracer("opentelemetry.instrumentation.sqlalchemy")


class HotQuery:
    """One statement compiled once; its `bindparam` names are the parameters it takes."""

    def __init__(self, statement: Executable) -> None:
        if not isinstance(statement, ClauseElement):
            raise TypeError("a HotQuery is built from a SQLAlchemy Core statement")
        compiled = statement.compile(dialect=_DIALECT)
        self.sql: str = compiled.string
        self.parameters: frozenset[str] = frozenset(compiled.params)
        self.operation: str = self.sql.split(None, 1)[0].upper()
        numbered = cast(SQLCompiler, statement.compile(dialect=_NUMBERED_DIALECT))
        self.numbered = libpq_execution.NumberedStatement(
            numbered.string, numbered.positiontup or ()
        )

    def span_attributes(self, database: str) -> dict[str, str]:
        """What a span of this statement records: the text, never the parameters."""
        return {"db.system": "postgresql", "db.name": database, "db.statement": self.sql}

    def bind(self, values: Mapping[str, object]) -> dict[str, object]:
        """The parameters, checked: a missing or unknown name is a bug, not a NULL."""
        if set(values) != self.parameters:
            missing = sorted(self.parameters - set(values))
            unknown = sorted(set(values) - self.parameters)
            raise ValueError(f"parameters missing {missing}, unknown {unknown}")
        return dict(values)


async def fetch_first(
    connection: AsyncConnection, query: HotQuery, values: Mapping[str, object]
) -> Any | None:
    """The first row (a named tuple) of `query` run with `values`, or None."""
    return await _run(connection, query, values, fetch=True)


async def fetch_all(
    connection: AsyncConnection, query: HotQuery, values: Mapping[str, object]
) -> list[Any]:
    """Every row (named tuples) of `query` run with `values`."""
    rows: list[Any] = await _run(connection, query, values, fetch="all") or []
    return rows


async def execute(
    connection: AsyncConnection, query: HotQuery, values: Mapping[str, object]
) -> None:
    """Runs a statement that returns no rows. Constraint violations surface as psycopg's
    own errors (`psycopg.errors.ForeignKeyViolation`...), their `diag` naming the
    constraint; the transaction is then aborted, as the unit of work's rollback expects."""
    await _run(connection, query, values, fetch=False)


async def _run(
    connection: AsyncConnection,
    query: HotQuery,
    values: Mapping[str, object],
    *,
    fetch: bool | Literal["all"],
) -> Any | None:
    fairy = await connection.get_raw_connection()
    driver: psycopg.AsyncConnection[Any] = fairy.driver_connection  # type: ignore[assignment]
    try:
        return await run_on_driver(driver, query, values, fetch=fetch)
    except DatabaseUnavailable as unavailable:
        if driver.broken or driver.closed:
            # What SQLAlchemy does when its own statement meets a dead connection: drop
            # this one, and the pool's others, which predate the failure (a restart).
            await connection.invalidate(_as_exception(unavailable.__cause__))
            await connection.engine.dispose()
        raise


async def run_on_driver(
    driver: psycopg.AsyncConnection[Any],
    query: HotQuery,
    values: Mapping[str, object],
    *,
    fetch: bool | Literal["all"],
    traced: bool = True,
) -> Any:
    """Runs `query` on a psycopg connection: the first row (or None) when `fetch` is True,
    every row when it is "all", nothing otherwise. Connection failures become
    DatabaseUnavailable; constraint violations stay psycopg's own errors.

    `traced=False` for statements that serve many requests at once (a group commit),
    which record their own spans in each request's trace instead.
    """
    parameters = query.bind(values)
    # The switch every OpenTelemetry instrumentation honours: work that polls (an outbox
    # relay) turns it off so its statements make no traces of their own.
    if not traced or not is_instrumentation_enabled():
        return await _execute(driver, query, parameters, fetch)
    info = driver.info
    with _tracer.start_as_current_span(
        f"{query.operation} {info.dbname}", kind=trace.SpanKind.CLIENT
    ) as span:
        if span.is_recording():
            span.set_attributes(
                {
                    **query.span_attributes(info.dbname),
                    "db.operation": f"{query.operation} {info.dbname}",
                    "net.peer.name": info.host,
                    "net.peer.port": info.port,
                }
            )
        return await _execute(driver, query, parameters, fetch)


async def _execute(
    driver: psycopg.AsyncConnection[Any],
    query: HotQuery,
    parameters: dict[str, object],
    fetch: bool | Literal["all"],
) -> Any:
    try:
        if libpq_execution.usable(driver):
            return await libpq_execution.run(driver, query.numbered, parameters, fetch)
        async with driver.cursor(row_factory=namedtuple_row) as cursor:
            await cursor.execute(query.sql, parameters, prepare=True)
            if fetch == "all":
                return await cursor.fetchall()
            return await cursor.fetchone() if fetch else None
    except (psycopg.OperationalError, psycopg.InterfaceError) as error:
        raise DatabaseUnavailable() from error


def _as_exception(error: BaseException | None) -> Exception | None:
    return error if isinstance(error, Exception) else None
