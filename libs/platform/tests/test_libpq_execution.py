"""Prepared statements on libpq directly, against a real PostgreSQL: the same rows and
errors as psycopg's cursor, prepared once per connection, and a connection left usable
(or closed) by whatever interrupts a statement."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import namedtuple_row
from psycopg.types.json import Jsonb
from sqlalchemy import bindparam, func, literal_column, select, text

from devstack.pytest_plugin import MakeDatabase
from medstation_platform import libpq_execution
from medstation_platform.hot_sql import HotQuery
from medstation_platform.statement_pool import psycopg_conninfo

_MIXED = HotQuery(
    text(
        "SELECT CAST(:number AS integer) + 1 AS next, :word AS word, CAST(:day AS date) AS day,"
        " CAST(:document AS jsonb) AS document, ARRAY[1, 2] AS pair, NULL AS nothing,"
        " CAST(:number AS integer) * 2 AS twice, gen_random_uuid() IS NOT NULL AS fresh"
    ).bindparams(bindparam("number"), bindparam("word"), bindparam("day"), bindparam("document"))
)
_SERIES = HotQuery(select(func.generate_series(literal_column("1"), bindparam("last")).label("n")))
_ADD = HotQuery(text("INSERT INTO tags (name) VALUES (:name)").bindparams(bindparam("name")))
_SLEEP = HotQuery(select(func.pg_sleep(bindparam("seconds"))))
_ECHO = HotQuery(select(func.length(bindparam("body")).label("length")))


@pytest.fixture(scope="module")
def conninfo(make_database: MakeDatabase) -> str:
    conninfo = psycopg_conninfo(make_database("platform_libpq"))
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("CREATE TABLE tags (name text CONSTRAINT tags_name_key UNIQUE)")
    return conninfo


@pytest.fixture
async def driver(conninfo: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as driver:
        yield driver


async def _run(
    driver: psycopg.AsyncConnection[Any], query: HotQuery, fetch: Any, **values: Any
) -> Any:
    return await libpq_execution.run(driver, query.numbered, query.bind(values), fetch)


async def _prepared(driver: psycopg.AsyncConnection[Any]) -> list[str]:
    async with driver.cursor() as cursor:
        await cursor.execute(
            "SELECT name FROM pg_prepared_statements WHERE name LIKE 'medstation%%' ORDER BY name"
        )
        return [name for (name,) in await cursor.fetchall()]


async def test_rows_are_the_ones_psycopgs_cursor_makes(
    driver: psycopg.AsyncConnection[Any],
) -> None:
    values = {
        "number": 41,
        "word": "héllo",
        "day": dt.date(2026, 12, 6),
        "document": Jsonb({"a": [1, None]}),
    }

    row = await _run(driver, _MIXED, True, **values)

    async with driver.cursor(row_factory=namedtuple_row) as cursor:
        await cursor.execute(_MIXED.sql, values)
        expected = await cursor.fetchone()
    assert expected is not None
    assert row == expected
    assert row._fields == expected._fields
    assert (row.next, row.word, row.day, row.document, row.pair, row.nothing) == (
        42,
        "héllo",
        dt.date(2026, 12, 6),
        {"a": [1, None]},
        [1, 2],
        None,
    )


async def test_fetch_first_all_or_nothing(driver: psycopg.AsyncConnection[Any]) -> None:
    assert [row.n for row in await _run(driver, _SERIES, "all", last=3)] == [1, 2, 3]
    assert (await _run(driver, _SERIES, True, last=3)).n == 1
    assert await _run(driver, _SERIES, True, last=0) is None
    assert await _run(driver, _SERIES, "all", last=0) == []
    assert await _run(driver, _SERIES, False, last=3) is None


async def test_a_statement_is_prepared_once_per_connection_and_parameter_types(
    driver: psycopg.AsyncConnection[Any],
) -> None:
    for _ in range(3):
        await _run(driver, _ECHO, True, body="abc")
    assert (await _run(driver, _ECHO, True, body=None)).length is None  # untyped, as text
    assert len(await _prepared(driver)) == 1

    # psycopg sends a small int as int2 and a larger one as int4: a statement prepared
    # for one would cast the other, so each set of types is prepared apart.
    assert len(await _run(driver, _SERIES, "all", last=3)) == 3
    assert len(await _run(driver, _SERIES, "all", last=100_000)) == 100_000
    assert len(await _prepared(driver)) == 3


async def test_statements_dropped_behind_its_back_are_prepared_again(
    driver: psycopg.AsyncConnection[Any],
) -> None:
    await _run(driver, _ECHO, True, body="abc")
    # What psycopg sends after a ROLLBACK on a connection it prepared statements on.
    await driver.execute("DEALLOCATE ALL")
    assert await _prepared(driver) == []

    assert (await _run(driver, _ECHO, True, body="abcd")).length == 4
    assert len(await _prepared(driver)) == 1


async def test_a_statement_prepared_by_a_caller_that_gave_up_is_used(
    driver: psycopg.AsyncConnection[Any],
) -> None:
    await _run(driver, _ECHO, True, body="abc")
    # What a caller cancelled between the server's Parse and reading its reply leaves: the
    # statement on the server, not in the connection's record of what it prepared.
    libpq_execution._states[driver].prepared.clear()

    assert (await _run(driver, _ECHO, True, body="abcd")).length == 4
    assert (await _run(driver, _ECHO, True, body="abcde")).length == 5
    assert len(await _prepared(driver)) == 1


async def test_a_large_parameter_is_sent_whole(driver: psycopg.AsyncConnection[Any]) -> None:
    body = "x" * 8_000_000  # larger than any socket buffer: libpq flushes it in parts

    assert (await _run(driver, _ECHO, True, body=body)).length == len(body)


async def test_a_violation_is_psycopgs_own_error_and_the_connection_goes_on(
    driver: psycopg.AsyncConnection[Any],
) -> None:
    name = f"tag-{uuid.uuid4()}"
    await _run(driver, _ADD, False, name=name)

    with pytest.raises(psycopg.errors.UniqueViolation) as violation:
        await _run(driver, _ADD, False, name=name)

    assert violation.value.diag.constraint_name == "tags_name_key"
    assert (await _run(driver, _ECHO, True, body="ok")).length == 2


async def test_a_cancelled_statement_is_stopped_on_the_server(
    driver: psycopg.AsyncConnection[Any],
) -> None:
    running = asyncio.create_task(_run(driver, _SLEEP, True, seconds=30))
    await asyncio.sleep(0.3)

    running.cancel()
    async with asyncio.timeout(10):
        with pytest.raises(asyncio.CancelledError):
            await running

    # The server was told to stop rather than left sleeping on a connection a pool
    # would hand out again: the next statement answers at once.
    async with asyncio.timeout(2):
        assert (await _run(driver, _ECHO, True, body="ok")).length == 2
    assert driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


async def test_a_connection_killed_under_a_statement_fails_as_psycopg_would(
    driver: psycopg.AsyncConnection[Any], conninfo: str
) -> None:
    await _run(driver, _ECHO, True, body="warm")
    with psycopg.connect(conninfo, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (driver.info.backend_pid,))

    with pytest.raises(psycopg.OperationalError):
        await _run(driver, _ECHO, True, body="after")
    assert driver.broken


async def test_only_connections_in_autocommit_are_used(conninfo: str) -> None:
    # psycopg begins a transaction before a statement on any other connection: that
    # stays its cursor's job, so the hot path must not run there.
    async with await psycopg.AsyncConnection.connect(conninfo) as in_transactions:
        assert not libpq_execution.usable(in_transactions)
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as autocommit:
        assert libpq_execution.usable(autocommit)
        async with autocommit.pipeline():
            assert not libpq_execution.usable(autocommit)


async def test_a_closed_connection_is_refused(conninfo: str) -> None:
    driver = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
    await driver.close()

    with pytest.raises(psycopg.OperationalError, match="closed"):
        await _run(driver, _ECHO, True, body="x")


def test_the_numbered_statement_takes_each_name_once_in_placeholder_order() -> None:
    assert _MIXED.numbered.names == ("number", "word", "day", "document")
    assert b"$1" in _MIXED.numbered.sql
    assert b"$5" not in _MIXED.numbered.sql
