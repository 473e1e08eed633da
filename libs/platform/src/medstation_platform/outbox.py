"""Transactional outbox: events are sent if and only if their transaction committed.

A use case stages event rows in its own transaction (`stage_event`); `OutboxRelay`
later appends them to a Redis Stream, in id order, and marks them published. Delivery
is at least once: a relay that dies after XADD and before its commit sends the batch
again, so consumers drop duplicates by `event_id`. PostgreSQL stays the state of
record: while Redis is away rows simply wait, unpublished.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry import propagate
from opentelemetry.instrumentation.utils import suppress_instrumentation
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.schema import SchemaItem

from medstation_platform.hot_sql import HotQuery, execute, fetch_all, fetch_first

logger = logging.getLogger(__name__)

# The W3C trace context keys forwarded to consumers as stream fields.
_TRACE_FIELDS = ("traceparent", "tracestate")
# The lag gauges cost a query; a few seconds of delay is fine for alerting on them.
_LAG_REFRESH_SECONDS = 5.0


def outbox_table(metadata: MetaData, name: str = "outbox") -> Table:
    """The outbox table for queries; `create_outbox_table` creates exactly this one."""
    return Table(name, metadata, *_schema_items(name))


def create_outbox_table(name: str = "outbox") -> None:
    """Create the outbox table and its index; call inside an Alembic migration's upgrade().

    Built from the same definition as `outbox_table`, so the two cannot drift apart.
    Later changes to the table belong in later migrations, not here.
    """
    from alembic import op  # only meaningful while Alembic runs a migration

    op.create_table(name, *_schema_items(name))


def _schema_items(name: str) -> list[SchemaItem]:
    return [
        # Identity order is publication order.
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        Column("event_id", Uuid(as_uuid=False), nullable=False),
        Column("event_type", Text, nullable=False),
        Column("partition_key", Text, nullable=False),
        Column("payload", JSONB, nullable=False),
        # none_as_null: no active trace is SQL NULL, not the JSON value `null`.
        Column("trace_context", JSONB(none_as_null=True)),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True)),
        UniqueConstraint("event_id", name=f"{name}_event_id_key"),
        # The relay's scan stays small however many published rows accumulate.
        Index(f"{name}_unpublished_idx", "id", postgresql_where=text("published_at IS NULL")),
    ]


@dataclass(frozen=True)
class OutboxEvent:
    """What happened (`event_type`), to what (`partition_key`, e.g. a patient id), details."""

    event_type: str
    partition_key: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class OutboxRow:
    """An outbox row as it is inserted: the event with its id and trace context."""

    event_id: str
    event_type: str
    partition_key: str
    payload: Mapping[str, Any]
    trace_context: dict[str, str] | None
    created_at: datetime


def outbox_row(event: OutboxEvent, *, now: datetime) -> OutboxRow:
    """The row for `event`, carrying the current trace context (call it in the request's
    own context), for statements that insert outbox rows themselves, many at a time."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return OutboxRow(
        event_id=str(uuid.uuid4()),
        event_type=event.event_type,
        partition_key=event.partition_key,
        payload=dict(event.payload),
        trace_context=_current_trace_context(),
        created_at=now,
    )


async def stage_event(
    connection: AsyncConnection, table: Table, event: OutboxEvent, *, now: datetime
) -> str:
    """Insert `event` in the caller's transaction (never commits); returns its event id.

    The current trace context is stored with it, so consumers can link their spans to
    the request that caused the event. The event's place in the stream is its id, taken
    at insert: stage it after the write that locks its aggregate's row, so two events of
    one partition are ordered as their transactions commit.
    """
    row = outbox_row(event, now=now)
    await connection.execute(insert(table).values(**vars(row)))
    return row.event_id


def _current_trace_context() -> dict[str, str] | None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


class OutboxRelay:
    """Publishes committed outbox rows to the Redis Stream `stream`, oldest first.

    Every replica may run one; a PostgreSQL advisory lock (`lock_id`: one per outbox
    table, distinct from every other advisory lock used in that database) lets only one
    publish at a time, which keeps the stream in id order. Redis calls are bounded by
    the client's socket timeouts, SQL by the engine's statement timeout.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        redis: Redis,
        table: Table,
        *,
        stream: str,
        lock_id: int,
        batch_size: int = 100,
        poll_interval_seconds: float = 0.2,
        max_stream_length: int = 100_000,
        retry_backoff_max_seconds: float = 5.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if batch_size <= 0 or poll_interval_seconds <= 0 or max_stream_length <= 0:
            raise ValueError("batch_size, poll_interval_seconds and max_stream_length must be > 0")
        self._engine = engine
        self._redis = redis
        self._table = table
        self._stream = stream
        self._lock_id = lock_id
        self._batch_size = batch_size
        self._poll_interval = poll_interval_seconds
        self._max_stream_length = max_stream_length
        self._backoff_max = max(retry_backoff_max_seconds, poll_interval_seconds)
        self._metrics = None if registry is None else _metrics_for(registry)
        self._statements = _RelayStatements.of(table)
        self._append_entries = redis.register_script(_APPEND_ENTRIES)
        self._lag_refreshed_at = float("-inf")
        self._failures = 0  # consecutive, for the backoff

    async def relay_once(self) -> int:
        """Publish up to `batch_size` unpublished rows; how many (0 if another relay is busy).

        Raises when Redis or PostgreSQL fails; the rows then stay unpublished.
        """
        async with self._engine.connect() as connection, connection.begin():
            if not await self._try_lock(connection):
                return 0
            rows = await fetch_all(connection, self._statements.oldest, {"limit": self._batch_size})
            if rows:
                await self._publish(rows)
                await self._mark_published(connection, [row.id for row in rows])
        # Counted only now: the commit made the batch published for good.
        self._count_published(len(rows))
        return len(rows)

    async def run(self, stopping: asyncio.Event) -> None:
        """Relay until `stopping` is set; failures are logged and retried, never raised."""
        while not stopping.is_set():
            # Polls run several times a second: traced, they would bury every request's
            # trace under one-span traces of the relay's own SELECTs.
            with suppress_instrumentation():
                pause = await self._relay_or_back_off()
            await _sleep_unless_stopped(stopping, pause)

    async def lag(self) -> tuple[int, float]:
        """How many rows are unpublished, and the age in seconds of the oldest of them."""
        unpublished = self._table.c.published_at.is_(None)
        query = select(func.count(), func.min(self._table.c.created_at)).where(unpublished)
        async with self._engine.connect() as connection:
            count, oldest = (await connection.execute(query)).one()
        if oldest is None:
            return int(count), 0.0
        return int(count), max(0.0, (datetime.now(UTC) - oldest).total_seconds())

    async def _relay_or_back_off(self) -> float:
        """One attempt; returns how long to pause before the next."""
        # Anything, not just I/O errors, is caught: a relay task that died would stop
        # every event while the service itself looked healthy.
        try:
            published = await self.relay_once()
        except Exception as error:
            pause = self._failed(error)
        else:
            pause = self._succeeded(published)
        # Also while failing: an outage is exactly when the lag must be visible.
        await self._refresh_lag_if_due()
        return pause

    def _succeeded(self, published: int) -> float:
        if self._failures:
            logger.info("outbox relay recovered", extra={"stream": self._stream})
            self._failures = 0
        # A full batch means more are waiting: go again at once.
        return 0.0 if published == self._batch_size else self._poll_interval

    def _failed(self, error: Exception) -> float:
        self._failures += 1
        if self._metrics is not None:
            self._metrics.errors.labels(self._stream).inc()
        # The traceback once per outage; afterwards one line per retry is enough.
        logger.warning(
            "outbox relay failed (attempt %d), retrying: %s",
            self._failures,
            error,
            exc_info=self._failures == 1,
            extra={"stream": self._stream},
        )
        return self._backoff()

    async def _try_lock(self, connection: AsyncConnection) -> bool:
        # Transaction-scoped: released by commit, rollback, or the connection dying.
        row = await fetch_first(connection, _TRY_LOCK, {"lock_id": self._lock_id})
        return bool(row is not None and row.locked)

    async def _publish(self, rows: Sequence[Any]) -> None:
        # One script call appends the whole batch: atomic like MULTI/EXEC, and one command
        # for redis-py to pack where a pipeline packed one per event.
        arguments: list[EncodableT] = [self._max_stream_length]
        for row in rows:
            fields = _stream_fields(row)
            arguments.append(len(fields))
            for name, value in fields.items():
                arguments += [name, value]
        await self._append_entries(keys=[self._stream], args=arguments)

    async def _mark_published(self, connection: AsyncConnection, ids: list[int]) -> None:
        # By id, never `id <= max`: a row with a smaller id whose transaction commits
        # while this batch is in flight was not published and must stay unpublished.
        await execute(
            connection, self._statements.mark_published, {"ids": ids, "now": datetime.now(UTC)}
        )

    async def _refresh_lag_if_due(self) -> None:
        if self._metrics is None:
            return
        if time.monotonic() - self._lag_refreshed_at < _LAG_REFRESH_SECONDS:
            return
        self._lag_refreshed_at = time.monotonic()
        try:
            count, age = await self.lag()
        except Exception:
            # PostgreSQL failing is reported by the relay attempt; keep the last values.
            logger.debug("outbox lag query failed", exc_info=True)
            return
        self._metrics.unpublished.labels(self._stream).set(count)
        self._metrics.oldest_age.labels(self._stream).set(age)

    def _count_published(self, count: int) -> None:
        if self._metrics is not None and count:
            self._metrics.published.labels(self._stream).inc(count)

    def _backoff(self) -> float:
        ceiling = min(self._backoff_max, self._poll_interval * 2 ** min(self._failures, 30))
        # Jitter keeps the replicas from retrying in lockstep; not a security use of random.
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311


# KEYS[1] the stream; ARGV[1] its approximate maximum length; then each entry as its
# field count followed by that many name, value pairs. Returns the entries' ids.
_APPEND_ENTRIES = """
local ids = {}
local i = 2
while i <= #ARGV do
  local count = tonumber(ARGV[i])
  local entry = {KEYS[1], 'MAXLEN', '~', ARGV[1], '*'}
  for j = i + 1, i + 2 * count do
    entry[#entry + 1] = ARGV[j]
  end
  ids[#ids + 1] = redis.call('XADD', unpack(entry))
  i = i + 1 + 2 * count
end
return ids
"""
_TRY_LOCK = HotQuery(select(func.pg_try_advisory_xact_lock(bindparam("lock_id")).label("locked")))


@dataclass(frozen=True)
class _RelayStatements:
    """The relay's statements on its outbox table, compiled once (medstation_platform.hot_sql):
    every poll runs them, and a batch's UPDATE would otherwise be a new statement for each
    batch size."""

    oldest: HotQuery
    mark_published: HotQuery

    @classmethod
    def of(cls, table: Table) -> _RelayStatements:
        columns = [
            table.c[name]
            for name in (
                "id",
                "event_id",
                "event_type",
                "partition_key",
                "payload",
                "trace_context",
                "created_at",
            )
        ]
        oldest = (
            select(*columns)
            .where(table.c.published_at.is_(None))
            .order_by(table.c.id)
            .limit(bindparam("limit"))
        )
        mark = (
            update(table)
            .where(table.c.id == func.any(bindparam("ids", type_=ARRAY(BigInteger))))
            .values(published_at=bindparam("now", type_=DateTime(timezone=True)))
        )
        return cls(HotQuery(oldest), HotQuery(mark))


def _stream_fields(row: Any) -> dict[FieldT, EncodableT]:
    fields: dict[FieldT, EncodableT] = {
        "event_id": str(row.event_id),
        "event_type": row.event_type,
        "partition_key": row.partition_key,
        "payload": json.dumps(row.payload, separators=(",", ":")),
        "created_at": row.created_at.astimezone(UTC).isoformat(),
    }
    trace_context: Mapping[str, str] = row.trace_context or {}
    fields.update({key: trace_context[key] for key in _TRACE_FIELDS if key in trace_context})
    return fields


async def _sleep_unless_stopped(stopping: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        await asyncio.sleep(0)  # still let other tasks run between full batches
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)


@dataclass(frozen=True)
class _RelayMetrics:
    published: Counter
    errors: Counter
    unpublished: Gauge
    oldest_age: Gauge


# One set of collectors per registry: prometheus_client refuses a metric name twice,
# and a service may relay more than one outbox.
_metrics_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, _RelayMetrics] = (
    weakref.WeakKeyDictionary()
)


def _metrics_for(registry: CollectorRegistry) -> _RelayMetrics:
    metrics = _metrics_by_registry.get(registry)
    if metrics is None:
        metrics = _build_metrics(registry)
        _metrics_by_registry[registry] = metrics
    return metrics


def _build_metrics(registry: CollectorRegistry) -> _RelayMetrics:
    labels = ["stream"]
    return _RelayMetrics(
        published=Counter(
            "outbox_events_published_total",
            "Outbox events appended to their stream (and committed as published).",
            labels,
            registry=registry,
        ),
        errors=Counter(
            "outbox_relay_errors_total",
            "Relay attempts that failed (Redis or PostgreSQL); the rows stay unpublished.",
            labels,
            registry=registry,
        ),
        unpublished=Gauge(
            "outbox_unpublished_events",
            "Committed outbox events not yet published.",
            labels,
            registry=registry,
        ),
        oldest_age=Gauge(
            "outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished outbox event (0 when none waits).",
            labels,
            registry=registry,
        ),
    )
