"""Query-plan tests: fill a migrated database with bulk SQL, then ask PostgreSQL how it
would run exactly the statement a repository sends (EXPLAIN; a prepared statement's plan
after it has run as often as it takes PostgreSQL to settle on one)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import ClauseElement, create_engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

PlanNode = dict[str, Any]


def fill_database(url: str, statements: Sequence[str], parameters: Mapping[str, object]) -> None:
    """Run bulk SQL in one transaction; each statement gets the parameters it names."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in statements:
                names = {key for key in parameters if f":{key}" in statement}
                connection.execute(text(statement), {key: parameters[key] for key in names})
    finally:
        engine.dispose()


async def query_plan(engine: AsyncEngine, statement: ClauseElement) -> list[PlanNode]:
    """Every node of the plan of exactly the SQL and parameters the repository would send."""
    compiled = statement.compile(dialect=engine.dialect)
    async with engine.connect() as connection:
        result = await connection.exec_driver_sql(
            f"EXPLAIN (FORMAT JSON) {compiled.string}", compiled.params
        )
        document = result.scalar_one()
        await connection.rollback()
    if isinstance(document, str):
        document = json.loads(document)
    return list(_nodes(document[0]["Plan"]))


async def prepared_query_plan(
    engine: AsyncEngine, numbered_sql: str, names: Sequence[str], values: Mapping[str, object]
) -> list[PlanNode]:
    """Every node of the plan of a prepared statement (`$n` placeholders, `names` in their
    order) once it has run more than five times: from then on PostgreSQL may keep one
    plan made for any values (a generic plan) when it guesses that plan no dearer than
    those it made for each run's values."""
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        # On psycopg directly: SQLAlchemy would have it read the `%` of an operator such
        # as pg_trgm's `<<%` as a placeholder.
        raw = await connection.get_raw_connection()
        driver: psycopg.AsyncConnection[Any] = raw.driver_connection  # type: ignore[assignment]
        # EXECUTE takes no bound parameters: the values are written in as literals.
        arguments = sql.SQL(", ").join(sql.Literal(values[name]) for name in names)
        execute = sql.SQL("EXECUTE medstation_plan ({})").format(arguments)
        await driver.execute(sql.SQL("PREPARE medstation_plan AS {}").format(sql.SQL(numbered_sql)))
        try:
            for _ in range(_RUNS_BEFORE_A_GENERIC_PLAN + 1):
                await driver.execute(execute)
            cursor = await driver.execute(sql.SQL("EXPLAIN (FORMAT JSON) {}").format(execute))
            row = await cursor.fetchone()
        finally:
            await driver.execute("DEALLOCATE medstation_plan")
    if row is None:
        raise AssertionError("EXPLAIN returned no plan")
    document = json.loads(row[0]) if isinstance(row[0], str) else row[0]
    return list(_nodes(document[0]["Plan"]))


# PostgreSQL plans a prepared statement for its values in its first five runs
# (plancache.c), then compares.
_RUNS_BEFORE_A_GENERIC_PLAN = 5


def _nodes(plan: PlanNode) -> Iterator[PlanNode]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)
