"""Prometheus gauges of a service's SQLAlchemy connection pool, read at scrape time.

A pool with every connection checked out and overflow in use is the usual first sign
of a slow database or a leaked connection: requests then queue for `pool_timeout`
before failing as UNAVAILABLE.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

_LABELS = ["pool"]


class PoolCollector(Collector):
    """The pools of one registry (a process may have more than one engine)."""

    def __init__(self) -> None:
        self._pools: dict[str, QueuePool] = {}

    def add(self, name: str, pool: QueuePool) -> None:
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
            checked_out.add_metric([name], pool.checkedout())
            idle.add_metric([name], pool.checkedin())
            # Negative while the pool has not opened all of its `size` connections yet.
            overflow.add_metric([name], max(pool.overflow(), 0))
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
    collector = _collectors.get(registry)
    if collector is None:
        collector = _collectors[registry] = PoolCollector()
        registry.register(collector)
    collector.add(name or engine.url.database or "default", pool)
