from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import MetaData, Table, create_engine, pool, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.ports import free_port
from devstack.process_runner import ProcessRunner, RunningProcess
from devstack.pytest_plugin import MakeDatabase
from medstation_platform.db import build_engine
from medstation_platform.outbox import (
    OutboxEvent,
    OutboxRelay,
    create_outbox_table,
    outbox_row,
    outbox_table,
    stage_event,
)
from medstation_platform.redis_connection import build_redis
from medstation_platform.telemetry import instrument_engine

StreamEntries = list[tuple[str, dict[str, str]]]


@pytest.fixture(scope="module")
def database_url(make_database: MakeDatabase) -> str:
    return make_database("platform_outbox")


@pytest.fixture
def table(database_url: str) -> Table:
    """A fresh outbox table per test, created the way a service migration creates it."""
    name = f"outbox_{secrets.token_hex(4)}"
    _migrate(database_url, lambda: create_outbox_table(name))
    return outbox_table(MetaData(), name)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = build_engine(database_url, pool_size=4, statement_timeout_ms=5_000)
    yield engine
    await engine.dispose()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = build_redis(redis_url, timeout_seconds=2)
    yield client
    await client.aclose()


@pytest.fixture
async def stream(redis: Redis) -> AsyncIterator[str]:
    name = f"test-events-{secrets.token_hex(6)}"
    yield name
    await redis.delete(name)


@pytest.fixture
def lock_id() -> int:
    return secrets.randbelow(2**62)


def _migrate(url: str, upgrade: Callable[[], None]) -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with (
            engine.begin() as connection,
            Operations.context(MigrationContext.configure(connection)),
        ):
            upgrade()
    finally:
        engine.dispose()


def _event(number: int, partition_key: str = "patient-1") -> OutboxEvent:
    return OutboxEvent("patient.updated", partition_key, {"n": number, "name": f"é {number}"})


async def _stage(
    engine: AsyncEngine,
    table: Table,
    *events: OutboxEvent,
    commit: bool = True,
    now: datetime | None = None,
) -> list[str]:
    async with engine.connect() as connection:
        staged_at = now or datetime.now(UTC)
        ids = [await stage_event(connection, table, event, now=staged_at) for event in events]
        await (connection.commit() if commit else connection.rollback())
    return ids


def _relay(
    engine: AsyncEngine, redis: Redis, table: Table, stream: str, lock_id: int, **options: Any
) -> OutboxRelay:
    return OutboxRelay(engine, redis, table, stream=stream, lock_id=lock_id, **options)


async def _entries(redis: Redis, stream: str) -> StreamEntries:
    # The clients here decode responses: ids and fields are already str.
    entries = await redis.xrange(stream) or []
    return [
        (str(entry_id), {str(key): str(value) for key, value in (fields or {}).items()})
        for entry_id, fields in entries
    ]


def _event_ids(entries: StreamEntries) -> list[str]:
    return [fields["event_id"] for _, fields in entries]


async def _eventually(condition: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(20):
        while not await condition():  # noqa: ASYNC110  # the state lives in PostgreSQL
            await asyncio.sleep(0.02)


def test_migration_helper_creates_exactly_the_query_table(make_database: MakeDatabase) -> None:
    url = make_database("platform_outbox_schema")
    _migrate(url, lambda: create_outbox_table("events_out"))
    metadata = MetaData()
    outbox_table(metadata, "events_out")

    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
    finally:
        engine.dispose()

    assert differences == []
    # Autogenerate does not compare index predicates: check the partial index itself.
    assert _index_definition(url, "events_out_unpublished_idx").endswith(
        "USING btree (id) WHERE (published_at IS NULL)"
    )


def _index_definition(url: str, index: str) -> str:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            query = text("SELECT indexdef FROM pg_indexes WHERE indexname = :index")
            return str(connection.scalar(query, {"index": index}))
    finally:
        engine.dispose()


async def test_committed_events_are_published_in_order_with_their_fields(
    engine: AsyncEngine, redis: Redis, table: Table, stream: str, lock_id: int
) -> None:
    staged_at = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    first = await _stage(engine, table, _event(1), _event(2), now=staged_at)
    second = await _stage(engine, table, _event(3, "patient-2"), now=staged_at)
    relay = _relay(engine, redis, table, stream, lock_id)

    assert await relay.relay_once() == 3
    assert await relay.relay_once() == 0

    entries = await _entries(redis, stream)
    assert _event_ids(entries) == first + second
    assert entries[2][1] == {
        "event_id": second[0],
        "event_type": "patient.updated",
        "partition_key": "patient-2",
        "payload": json.dumps({"n": 3, "name": "é 3"}, separators=(",", ":")),
        "created_at": "2026-01-02T03:04:05.123456+00:00",
    }
    assert await relay.lag() == (0, 0.0)


async def test_events_of_a_rolled_back_transaction_are_never_published(
    engine: AsyncEngine, redis: Redis, table: Table, stream: str, lock_id: int
) -> None:
    await _stage(engine, table, _event(1), _event(2), commit=False)
    kept = await _stage(engine, table, _event(3))
    relay = _relay(engine, redis, table, stream, lock_id)

    assert await relay.relay_once() == 1

    assert _event_ids(await _entries(redis, stream)) == kept
    async with engine.connect() as connection:
        assert await connection.scalar(select(text("count(*)")).select_from(table)) == 1


async def test_an_event_committed_after_a_newer_one_was_published_still_goes_out(
    engine: AsyncEngine, redis: Redis, table: Table, stream: str, lock_id: int
) -> None:
    relay = _relay(engine, redis, table, stream, lock_id)
    async with engine.connect() as slow_transaction:
        late = await stage_event(slow_transaction, table, _event(1), now=datetime.now(UTC))
        early = await _stage(engine, table, _event(2))  # larger id, committed first
        assert await relay.relay_once() == 1
        await slow_transaction.commit()

    assert await relay.relay_once() == 1
    assert _event_ids(await _entries(redis, stream)) == [*early, late]


async def test_the_writing_requests_trace_context_travels_with_the_event(
    engine: AsyncEngine, redis: Redis, table: Table, stream: str, lock_id: int
) -> None:
    with _in_a_sampled_trace():
        await _stage(engine, table, _event(1))
    await _stage(engine, table, _event(2))  # outside any trace

    await _relay(engine, redis, table, stream, lock_id).relay_once()

    traced, untraced = (fields for _, fields in await _entries(redis, stream))
    assert traced["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert "traceparent" not in untraced
    async with engine.connect() as connection:
        stored = (
            await connection.scalars(select(table.c.trace_context).order_by(table.c.id))
        ).all()
    assert stored[1] is None  # SQL NULL, not JSON null


async def test_batches_take_the_oldest_unpublished_first(
    engine: AsyncEngine, redis: Redis, table: Table, stream: str, lock_id: int
) -> None:
    staged = [(await _stage(engine, table, _event(n)))[0] for n in range(5)]
    relay = _relay(engine, redis, table, stream, lock_id, batch_size=2)

    assert [await relay.relay_once() for _ in range(4)] == [2, 2, 1, 0]

    assert _event_ids(await _entries(redis, stream)) == staged


async def test_a_relay_without_the_lock_publishes_nothing(
    engine: AsyncEngine, redis: Redis, table: Table, stream: str, lock_id: int
) -> None:
    staged = await _stage(engine, table, _event(1))
    relay = _relay(engine, redis, table, stream, lock_id)

    async with engine.connect() as other_replica:
        await other_replica.execute(select(text(f"pg_advisory_xact_lock({lock_id})")))
        assert await relay.relay_once() == 0
        assert await _entries(redis, stream) == []
        await other_replica.rollback()

    assert await relay.relay_once() == 1
    assert _event_ids(await _entries(redis, stream)) == staged


async def test_concurrent_relays_publish_each_event_once_in_id_order(
    database_url: str, redis: Redis, table: Table, stream: str, lock_id: int
) -> None:
    engines = [build_engine(database_url, pool_size=2, statement_timeout_ms=5_000) for _ in "ab"]
    relays = [
        _relay(engine, redis, table, stream, lock_id, batch_size=3, poll_interval_seconds=0.005)
        for engine in engines
    ]
    stopping = asyncio.Event()
    running = [asyncio.create_task(relay.run(stopping)) for relay in relays]
    try:
        # Transactions commit one after another, so id order is also commit order.
        staged: list[str] = []
        for batch in range(40):
            events = [_event(batch * 10 + n, f"patient-{n % 3}") for n in range(1 + batch % 4)]
            staged += await _stage(engines[batch % 2], table, *events)
        await _eventually(lambda: _published_all(relays[0]))
    finally:
        stopping.set()
        await asyncio.wait_for(asyncio.gather(*running), timeout=10)
        for engine in engines:
            await engine.dispose()

    assert _event_ids(await _entries(redis, stream)) == staged


async def _published_all(relay: OutboxRelay) -> bool:
    unpublished, _ = await relay.lag()
    return unpublished == 0


async def test_lag_reports_unpublished_events_and_the_oldest_age(
    engine: AsyncEngine, redis: Redis, table: Table, stream: str, lock_id: int
) -> None:
    relay = _relay(engine, redis, table, stream, lock_id)
    assert await relay.lag() == (0, 0.0)

    await _stage(engine, table, _event(1), now=datetime.now(UTC) - timedelta(minutes=2))
    await _stage(engine, table, _event(2), _event(3))

    unpublished, oldest_age = await relay.lag()
    assert unpublished == 3
    assert 120 <= oldest_age < 180
    await relay.relay_once()
    assert await relay.lag() == (0, 0.0)


def _start_redis(runner: ProcessRunner, port: int, run_dir: Path) -> RunningProcess:
    server = shutil.which("redis-server")
    assert server is not None, "redis-server is not installed"
    argv = [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    return runner.start(f"redis-{port}", [*argv, "--dir", str(run_dir)])


async def _answers(client: Redis) -> bool:
    try:
        return bool(await client.ping())
    except RedisError:
        return False


async def test_a_redis_outage_delays_events_but_loses_none(
    engine: AsyncEngine,
    table: Table,
    lock_id: int,
    process_runner: ProcessRunner,
    tmp_path: Path,
) -> None:
    port = free_port()
    server = _start_redis(process_runner, port, tmp_path)
    client = build_redis(f"redis://127.0.0.1:{port}/0", timeout_seconds=0.5)
    registry = CollectorRegistry()
    relay = _relay(
        engine, client, table, "events", lock_id, poll_interval_seconds=0.01,
        retry_backoff_max_seconds=0.1, registry=registry,
    )  # fmt: skip
    stopping = asyncio.Event()
    try:
        await _eventually(lambda: _answers(client))
        staged = await _stage(engine, table, _event(1), _event(2), _event(3))

        server.popen.kill()
        server.popen.wait(timeout=10)
        with pytest.raises(RedisError):
            await relay.relay_once()
        assert (await relay.lag())[0] == 3

        running = asyncio.create_task(relay.run(stopping))
        await _eventually(lambda: _errors_counted(registry))
        staged += await _stage(engine, table, _event(4))  # the service keeps writing
        assert not running.done()
        assert registry.get_sample_value("outbox_unpublished_events", {"stream": "events"}) == 3

        _start_redis(process_runner, port, tmp_path)
        await _eventually(lambda: _published_all(relay))
        stopping.set()
        await asyncio.wait_for(running, timeout=10)

        assert _event_ids(await _entries(client, "events")) == staged
        assert registry.get_sample_value("outbox_events_published_total", {"stream": "events"}) == 4
    finally:
        stopping.set()
        await client.aclose()


async def _errors_counted(registry: CollectorRegistry) -> bool:
    errors = registry.get_sample_value("outbox_relay_errors_total", {"stream": "events"})
    return (errors or 0) >= 2


async def test_the_relays_polling_is_not_traced(
    database_url: str,
    redis: Redis,
    table: Table,
    stream: str,
    lock_id: int,
    recorded_spans: InMemorySpanExporter,
) -> None:
    """Polls several times a second would bury every request's trace in one-span traces.

    Every OpenTelemetry instrumentation (SQLAlchemy, Redis, our hot statements) checks
    the same switch before it makes a span; the relay's work must all run with it off.
    """
    engine = build_engine(database_url, pool_size=2, statement_timeout_ms=5000)
    instrument_engine(engine)
    try:
        recorded_spans.clear()
        await _stage(engine, table, _event(1))
        assert recorded_spans.get_finished_spans()  # an ordinary statement is traced
        recorded_spans.clear()
        relay = _relay(engine, redis, table, stream, lock_id, poll_interval_seconds=0.01)
        stopping = asyncio.Event()
        running = asyncio.ensure_future(relay.run(stopping))
        await _eventually(_stream_has_entries(redis, stream))
        stopping.set()
        await running
        assert recorded_spans.get_finished_spans() == ()
    finally:
        await engine.dispose()


@contextmanager
def _in_a_sampled_trace() -> Iterator[None]:
    """Code run as a sampled request's (trace 0af7…319c, span b7ad…3331) would run."""
    span = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(span)))
    try:
        yield
    finally:
        otel_context.detach(token)


def _stream_has_entries(redis: Redis, stream: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool(await _entries(redis, stream))

    return check


def test_an_outbox_row_is_the_event_with_a_fresh_id_and_the_callers_trace_context() -> None:
    payload: dict[str, Any] = {"n": 1}
    event = OutboxEvent("patient.updated", "patient-1", payload)
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with _in_a_sampled_trace():
        row = outbox_row(event, now=now)
    untraced = outbox_row(event, now=now)
    payload["n"] = 2  # the request changing its dict later does not change the row

    assert (row.event_type, row.partition_key, row.payload) == (
        "patient.updated",
        "patient-1",
        {"n": 1},
    )
    assert row.created_at == now
    assert row.trace_context == {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    }
    assert untraced.trace_context is None
    assert str(uuid.UUID(row.event_id)) == row.event_id != untraced.event_id


def test_an_outbox_row_needs_a_timezone_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        outbox_row(_event(1), now=datetime(2026, 1, 2, 3, 4, 5))
