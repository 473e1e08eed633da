"""Group commit as its callers see it: concurrent submits share one batch call, each caller
gets its own result, failures and cancellations stay within their batch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from prometheus_client import CollectorRegistry

from medstation_platform.db import DatabaseUnavailable
from medstation_platform.group_commit import GroupCommit

_tracer = trace.get_tracer(__name__)


class BatchWriter:
    """A batch function that records every batch it is given.

    `hold()` keeps the batches in flight until `release()`; `fail_on` makes any batch
    holding that item raise `error`."""

    def __init__(
        self, fail_on: int | None = None, error: Callable[[str], Exception] = ValueError
    ) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on
        self._error = error
        self._gate: asyncio.Event | None = None

    def hold(self) -> None:
        self._gate = asyncio.Event()

    def release(self) -> None:
        assert self._gate is not None
        self._gate.set()

    async def __call__(self, items: Sequence[int]) -> list[str]:
        self.batches.append(list(items))
        if self._gate is not None:
            await self._gate.wait()
        if self.fail_on in items:
            raise self._error(f"item {self.fail_on} broke the statement")
        return [f"result {item}" for item in items]


def _group(writer: BatchWriter, **options: object) -> GroupCommit[int, str]:
    return GroupCommit(writer, span_name="INSERT audit", **options)  # type: ignore[arg-type]


async def _until(condition: Callable[[], bool]) -> None:
    """Lets other tasks run until `condition` holds (turns of the loop, not a timer)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def _queued(group: GroupCommit[int, str], items: range) -> list[asyncio.Task[str]]:
    """Callers submitting `items`, each queued: a submit queues its item before it first
    waits, and one turn of the loop runs every new task up to that wait."""
    tasks = [asyncio.create_task(group.submit(item)) for item in items]
    await asyncio.sleep(0)
    return tasks


async def test_concurrent_submits_share_calls_and_each_caller_gets_its_own_result() -> None:
    writer = BatchWriter()
    group = _group(writer)

    results = await asyncio.gather(*(group.submit(item) for item in range(50)))

    assert results == [f"result {item}" for item in range(50)]
    assert len(writer.batches) < 50
    assert sorted(item for batch in writer.batches for item in batch) == list(range(50))
    assert (group.batches_written, group.items_written) == (len(writer.batches), 50)


async def test_a_lone_item_goes_at_once_and_items_arriving_meanwhile_share_the_next_call() -> None:
    writer = BatchWriter()
    writer.hold()
    group = _group(writer)
    first = asyncio.create_task(group.submit(0))
    await _until(lambda: writer.batches == [[0]])  # written alone: no waiting for company

    later = await _queued(group, range(1, 6))
    writer.release()

    assert await first == "result 0"
    assert await asyncio.gather(*later) == [f"result {item}" for item in range(1, 6)]
    assert writer.batches == [[0], [1, 2, 3, 4, 5]]


async def test_no_batch_holds_more_than_max_batch_items() -> None:
    writer = BatchWriter()
    group = _group(writer, max_batch=8)

    results = await asyncio.gather(*(group.submit(item) for item in range(20)))

    assert results == [f"result {item}" for item in range(20)]
    assert [len(batch) for batch in writer.batches] == [8, 8, 4]


def test_a_max_batch_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        _group(BatchWriter(), max_batch=0)


async def test_an_item_that_breaks_its_batch_fails_alone_and_the_others_are_written() -> None:
    writer = BatchWriter(fail_on=2)
    writer.hold()
    group = _group(writer)
    in_flight = asyncio.create_task(group.submit(1))
    await _until(lambda: len(writer.batches) == 1)
    queued = await _queued(group, range(2, 5))  # 2 breaks the statement holding 3 and 4
    writer.release()

    outcomes = await asyncio.gather(*queued, return_exceptions=True)

    assert await in_flight == "result 1"
    assert isinstance(outcomes[0], ValueError)
    assert outcomes[1:] == ["result 3", "result 4"]
    assert writer.batches == [[1], [2, 3, 4], [2], [3], [4]]  # then each alone
    assert await group.submit(5) == "result 5"


async def test_an_outage_fails_the_whole_batch_at_once_and_the_next_batch_works() -> None:
    writer = BatchWriter(fail_on=2, error=DatabaseUnavailable)
    writer.hold()
    group = _group(writer)
    in_flight = asyncio.create_task(group.submit(1))
    await _until(lambda: len(writer.batches) == 1)
    queued = await _queued(group, range(2, 5))
    writer.release()

    outcomes = await asyncio.gather(*queued, return_exceptions=True)

    assert await in_flight == "result 1"
    assert [type(outcome) for outcome in outcomes] == [DatabaseUnavailable] * 3
    assert writer.batches == [[1], [2, 3, 4]]  # alone, each would fail as well
    assert await group.submit(5) == "result 5"


async def test_a_batch_function_giving_the_wrong_number_of_results_fails_its_callers() -> None:
    async def one_too_many(items: Sequence[int]) -> list[str]:
        return ["extra"] * (len(items) + 1)

    group: GroupCommit[int, str] = GroupCommit(one_too_many, span_name="INSERT audit")

    outcomes = await asyncio.gather(group.submit(1), group.submit(2), return_exceptions=True)

    assert [type(outcome) for outcome in outcomes] == [RuntimeError, RuntimeError]
    assert "a batch of 1 gave 2 results" in str(outcomes[0])
    assert group.items_written == 0


async def test_a_caller_that_gives_up_leaves_its_item_and_the_others_get_their_results() -> None:
    writer = BatchWriter()
    writer.hold()
    group = _group(writer)
    in_flight = asyncio.create_task(group.submit(0))
    await _until(lambda: len(writer.batches) == 1)
    waiting = await _queued(group, range(1, 4))

    in_flight.cancel()  # gives up while its batch is being written
    waiting[1].cancel()  # gives up before its batch is taken
    writer.release()

    assert await waiting[0] == "result 1"
    assert await waiting[2] == "result 3"
    for task in (in_flight, waiting[1]):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert writer.batches == [[0], [1, 2, 3]]  # the write of 2 still happened
    assert group.items_written == 4


async def test_close_waits_for_the_batches_already_submitted() -> None:
    writer = BatchWriter()
    writer.hold()
    group = _group(writer)
    callers = await _queued(group, range(3))
    await _until(lambda: len(writer.batches) == 1)

    closing = asyncio.create_task(group.close())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not closing.done()
    writer.release()
    await asyncio.wait_for(closing, timeout=5)

    assert group.items_written == 3
    assert await asyncio.gather(*callers) == ["result 0", "result 1", "result 2"]
    await asyncio.wait_for(group.close(), timeout=1)  # nothing pending: returns at once


def _spans_named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


async def test_each_sampled_caller_records_its_wait_in_its_own_trace(
    recorded_spans: InMemorySpanExporter,
) -> None:
    async def traced_batch(items: Sequence[int]) -> list[str]:
        # The batch serves many requests: a span it makes belongs to none of them.
        _tracer.start_span("shared statement").end()
        return [str(item) for item in items]

    group: GroupCommit[int, str] = GroupCommit(
        traced_batch, span_name="INSERT audit", span_attributes={"db.system": "postgresql"}
    )

    async def request(item: int) -> tuple[str, ReadableSpan]:
        with _tracer.start_as_current_span(f"request {item}") as span:
            result = await group.submit(item)
        assert isinstance(span, ReadableSpan)
        return result, span

    recorded_spans.clear()
    (first, first_request), (second, second_request) = await asyncio.gather(request(1), request(2))

    assert (first, second) == ("1", "2")
    waits = _spans_named(recorded_spans, "INSERT audit")
    parents = {span.parent.span_id for span in waits if span.parent is not None}
    assert parents == {first_request.context.span_id, second_request.context.span_id}
    for wait in waits:
        assert wait.kind == trace.SpanKind.CLIENT
        assert dict(wait.attributes or {}) == {
            "db.system": "postgresql",
            "medstation.group_commit.batch_items": 2,
        }
    [statement] = _spans_named(recorded_spans, "shared statement")
    assert statement.parent is None


async def test_callers_outside_a_recorded_trace_make_no_span(
    recorded_spans: InMemorySpanExporter,
) -> None:
    group = _group(BatchWriter())
    unsampled = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.DEFAULT),
    )
    recorded_spans.clear()

    assert await group.submit(1) == "result 1"  # no trace at all
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(unsampled)))
    try:
        assert await group.submit(2) == "result 2"  # a trace the caller does not record
    finally:
        otel_context.detach(token)

    assert _spans_named(recorded_spans, "INSERT audit") == []


async def test_batch_sizes_are_counted_per_name_in_one_registry() -> None:
    registry = CollectorRegistry()
    reads = _group(BatchWriter(), name="reads", registry=registry)
    writes = _group(BatchWriter(), name="writes", registry=registry)  # same registry: fine

    await asyncio.gather(*(reads.submit(item) for item in range(3)))
    await reads.submit(3)
    await asyncio.gather(writes.submit(1), writes.submit(2))

    def sample(suffix: str, name: str, **labels: str) -> float | None:
        return registry.get_sample_value(
            f"group_commit_batch_items_{suffix}", {"name": name, **labels}
        )

    assert (sample("count", "reads"), sample("sum", "reads")) == (2, 4)
    assert (sample("bucket", "reads", le="1.0"), sample("bucket", "reads", le="4.0")) == (1, 2)
    assert (sample("count", "writes"), sample("sum", "writes")) == (1, 2)
