"""Client CPU of one hot statement: psycopg's async cursor against libpq_execution.

A statement shaped like a group commit's (a JSON batch of three reads, each recording
an audit row and returning its record) runs on a few autocommit connections at once,
the two ways in alternating rounds; the process's CPU time over each round, divided by
the statements it ran, is the client's cost (PostgreSQL's own is not in it).

    .venv/bin/python libs/platform/benchmarks/statement_execution.py [--statements 3000]

Needs the PostgreSQL `make test` uses (MEDSTATION_POSTGRES_ADMIN_URL, or the local
one); makes a scratch database and drops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import uvloop
from psycopg.rows import namedtuple_row
from sqlalchemy import text

from devstack.postgres import admin_url_from_env, database_url, drop_database, ensure_database
from medstation_platform import libpq_execution
from medstation_platform.hot_sql import HotQuery
from medstation_platform.statement_pool import psycopg_conninfo

_SCHEMA = """
CREATE TABLE records (id uuid PRIMARY KEY, name text NOT NULL, born date NOT NULL,
                      team uuid[] NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE audit (id uuid PRIMARY KEY, record_id uuid NOT NULL, actor uuid NOT NULL,
                    at timestamptz NOT NULL DEFAULT now());
INSERT INTO records
SELECT gen_random_uuid(), 'Patient ' || n, date '1950-01-01' + n, ARRAY[gen_random_uuid()],
       now()
FROM generate_series(1, 1000) n;
ANALYZE records;
"""
_READ = HotQuery(
    text(
        "WITH reads AS (SELECT * FROM json_to_recordset(CAST(:reads AS json))"
        " AS r(audit_id uuid, record_id uuid, actor uuid)),"
        " recorded AS (INSERT INTO audit (id, record_id, actor)"
        " SELECT audit_id, record_id, actor FROM reads RETURNING record_id)"
        " SELECT r.id, r.name, r.born, r.team, r.updated_at FROM records r"
        " JOIN recorded ON recorded.record_id = r.id"
    )
)

Execute = Callable[[psycopg.AsyncConnection[Any], str], Awaitable[list[Any]]]


async def _through_cursor(driver: psycopg.AsyncConnection[Any], document: str) -> list[Any]:
    async with driver.cursor(row_factory=namedtuple_row) as cursor:
        await cursor.execute(_READ.sql, {"reads": document}, prepare=True)
        return await cursor.fetchall()


async def _through_libpq(driver: psycopg.AsyncConnection[Any], document: str) -> list[Any]:
    rows: list[Any] = await libpq_execution.run(driver, _READ.numbered, {"reads": document}, "all")
    return rows


async def _round(
    execute: Execute, drivers: list[psycopg.AsyncConnection[Any]], ids: list[str], count: int
) -> float:
    """CPU µs per statement over `count` statements spread over `drivers`."""

    async def worker(driver: psycopg.AsyncConnection[Any], share: int) -> None:
        for _ in range(share):
            reads = [
                {"audit_id": str(uuid.uuid4()), "record_id": secrets.choice(ids), "actor": ids[0]}
                for _ in range(3)
            ]
            rows = await execute(driver, json.dumps(reads))
            if len(rows) != 3:
                raise AssertionError(f"expected 3 rows, got {len(rows)}")

    share = count // len(drivers)
    started = time.process_time()
    await asyncio.gather(*(worker(driver, share) for driver in drivers))
    return (time.process_time() - started) / (share * len(drivers)) * 1e6


async def _measure(conninfo: str, statements: int, rounds: int) -> dict[str, list[float]]:
    drivers = [await psycopg.AsyncConnection.connect(conninfo, autocommit=True) for _ in range(4)]
    try:
        cursor = await drivers[0].execute("SELECT id::text FROM records")
        ids = [row[0] for row in await cursor.fetchall()]
        ways: dict[str, Execute] = {
            "psycopg async cursor": _through_cursor,
            "libpq_execution": _through_libpq,
        }
        for execute in ways.values():  # prepare everywhere, warm caches
            await _round(execute, drivers, ids, 400)
        results: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(rounds):
            for name, execute in ways.items():
                results[name].append(await _round(execute, drivers, ids, statements))
        return results
    finally:
        for driver in drivers:
            await driver.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--statements", type=int, default=3000, help="per round and way")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    admin = admin_url_from_env()
    name = f"bench_statements_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(18)
    ensure_database(admin, name, name, password)
    try:
        conninfo = psycopg_conninfo(database_url(admin, name, name, password))
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(_SCHEMA)
        results = uvloop.run(_measure(conninfo, args.statements, args.rounds))
    finally:
        drop_database(admin, name, name)
    print(f"client CPU per statement (3 reads and their audit rows), {args.rounds} rounds each:")
    for way, values in results.items():
        shown = ", ".join(f"{value:.0f}" for value in values)
        print(f"  {way:22} median {statistics.median(values):5.0f} µs  ({shown})")


if __name__ == "__main__":
    main()
