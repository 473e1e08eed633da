"""The connection pool as Prometheus sees it: size, in use, idle, overflow."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from devstack.pytest_plugin import MakeDatabase
from medstation_platform.db import build_engine
from medstation_platform.pool_metrics import instrument_pool


def _value(registry: CollectorRegistry, name: str, pool: str) -> float | None:
    return registry.get_sample_value(name, {"pool": pool})


async def test_gauges_follow_connections_checked_out_and_returned(
    make_database: MakeDatabase,
) -> None:
    engine = build_engine(make_database("pool"), pool_size=1, statement_timeout_ms=5_000)
    registry = CollectorRegistry()
    instrument_pool(engine, registry, name="records")
    try:
        assert _value(registry, "db_pool_size", "records") == 1
        assert _value(registry, "db_pool_checked_out_connections", "records") == 0
        async with engine.connect() as first, engine.connect() as second:
            await first.execute(text("SELECT 1"))
            await second.execute(text("SELECT 1"))
            assert _value(registry, "db_pool_checked_out_connections", "records") == 2
            assert _value(registry, "db_pool_overflow_connections", "records") == 1
        assert _value(registry, "db_pool_checked_out_connections", "records") == 0
        assert _value(registry, "db_pool_idle_connections", "records") == 1
    finally:
        await engine.dispose()


async def test_several_engines_share_a_registry_labelled_by_database(
    make_database: MakeDatabase,
) -> None:
    urls = [make_database("pool_a"), make_database("pool_b")]
    engines = [build_engine(url, pool_size=3, statement_timeout_ms=5_000) for url in urls]
    registry = CollectorRegistry()
    try:
        for engine in engines:
            instrument_pool(engine, registry)
        for engine in engines:
            assert _value(registry, "db_pool_size", str(engine.url.database)) == 3
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_pool_that_keeps_no_connections_reports_nothing() -> None:
    engine = create_async_engine("postgresql+psycopg://u@127.0.0.1/db", poolclass=NullPool)
    registry = CollectorRegistry()

    instrument_pool(engine, registry)

    assert _value(registry, "db_pool_size", "db") is None
    await engine.dispose()
