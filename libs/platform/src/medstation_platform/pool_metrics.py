"""Prometheus gauges of a service's connection pools, read at scrape time: the
SQLAlchemy engine's (transactions) and the statement pool's (single statements).

A pool with every connection checked out and overflow in use is the usual first sign
of a slow database or a leaked connection: requests then queue for `pool_timeout`
before failing as UNAVAILABLE.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from medstation_platform.statement_pool import StatementPool

_LABELS = ["pool"]


class PoolReading(Protocol):
    """What the gauges read of a pool, whichever library keeps it."""

    def size(self) -> int: ...
    def checked_out(self) -> int: ...
    def idle(self) -> int: ...
    def overflow(self) -> int: ...


class _EnginePool:
    def __init__(self, pool: QueuePool) -> None:
        self._pool = pool

    def size(self) -> int:
        return self._pool.size()

    def checked_out(self) -> int:
        return self._pool.checkedout()

    def idle(self) -> int:
        return self._pool.checkedin()

    def overflow(self) -> int:
        # Negative while the pool has not opened all of its `size` connections yet.
        return max(self._pool.overflow(), 0)


class _StatementPoolReading:
    def __init__(self, pool: StatementPool) -> None:
        self._pool = pool

    def size(self) -> int:
        return self._pool.stats().get("pool_max", 0)

    def checked_out(self) -> int:
        stats = self._pool.stats()
        return stats.get("pool_size", 0) - stats.get("pool_available", 0)

    def idle(self) -> int:
        return self._pool.stats().get("pool_available", 0)

    def overflow(self) -> int:
        return 0  # it never grows beyond its size


class PoolCollector(Collector):
    """The pools of one registry (a process may have more than one)."""

    def __init__(self) -> None:
        self._pools: dict[str, PoolReading] = {}

    def add(self, name: str, pool: PoolReading) -> None:
        self._pools[name] = pool

    def collect(self) -> Iterator[Metric]:
        size = GaugeMetricFamily(
            "db_pool_size", "Connections the pool keeps open (its configured size).", labels=_LABELS
        )
        checked_out = GaugeMetricFamily(
            "db_pool_checked_out_connections",
            "Connections in use by a transaction right now.",
            labels=_LABELS,
        )
        idle = GaugeMetricFamily(
            "db_pool_idle_connections", "Open connections waiting in the pool.", labels=_LABELS
        )
        overflow = GaugeMetricFamily(
            "db_pool_overflow_connections",
            "Connections open beyond the pool size (at most its max_overflow).",
            labels=_LABELS,
        )
        for name, pool in self._pools.items():
            size.add_metric([name], pool.size())
            checked_out.add_metric([name], pool.checked_out())
            idle.add_metric([name], pool.idle())
            overflow.add_metric([name], pool.overflow())
        yield from (size, checked_out, idle, overflow)


# One collector per registry: prometheus_client refuses the same metric names twice.
_collectors: weakref.WeakKeyDictionary[CollectorRegistry, PoolCollector] = (
    weakref.WeakKeyDictionary()
)


def instrument_pool(
    engine: AsyncEngine, registry: CollectorRegistry, *, name: str | None = None
) -> None:
    """Report `engine`'s pool on `registry`, labelled `pool=name` (default: the database).

    Pools that do not queue (NullPool, StaticPool: tests) have nothing to report.
    """
    pool = engine.sync_engine.pool
    if not isinstance(pool, QueuePool):
        return
    _collector(registry).add(name or engine.url.database or "default", _EnginePool(pool))


def instrument_statement_pool(
    statements: StatementPool, registry: CollectorRegistry, *, name: str
) -> None:
    """Report the statement pool on `registry`, labelled `pool=name`."""
    _collector(registry).add(name, _StatementPoolReading(statements))


def _collector(registry: CollectorRegistry) -> PoolCollector:
    collector = _collectors.get(registry)
    if collector is None:
        collector = _collectors[registry] = PoolCollector()
        registry.register(collector)
    return collector
