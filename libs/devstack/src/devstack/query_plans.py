"""Query-plan tests: fill a migrated database with bulk SQL, then ask PostgreSQL how it
would run exactly the statement a repository sends (EXPLAIN, never executed)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

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


def _nodes(plan: PlanNode) -> Iterator[PlanNode]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)
