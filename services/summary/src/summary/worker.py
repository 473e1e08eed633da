"""The summary worker's loops: jobs from the stream, the reconciler, patient events.

Several workers may run at once: they share the job stream's consumer group (each entry
goes to one of them), and the job row's conditional claim settles any overlap. Each loop
survives Redis or PostgreSQL failing: it logs, backs off, and goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import Link, SpanKind, Tracer

from summary.domain import PatientEvent
from summary.events import handle_patient_events
from summary.jobs import Outcome, process_job, reconcile
from summary.metrics import WorkerMetrics
from summary.ports import QueueUnavailable
from summary.streams import Entry, StreamGroup
from summary.use_cases import Summaries

logger = logging.getLogger(__name__)

_BLOCK_MS = 1000
_EVENTS_BATCH = 100
# Delays a staleness mark by this much at most: a hint for operators, never a correctness
# matter (a changed chart's new fingerprint already keeps its old summary from being used).
_EVENTS_LINGER_SECONDS = 0.1
_EVENTS_CLAIM_IDLE_MS = 60_000
_BACKOFF_MAX_SECONDS = 5.0


@dataclass(frozen=True)
class WorkerConfig:
    concurrency: int = 4
    claim_idle_seconds: float = 360.0
    reconcile_interval_seconds: float = 5.0
    shutdown_grace_seconds: float = 10.0


class SummaryWorker:
    def __init__(
        self,
        summaries: Summaries,
        *,
        jobs: StreamGroup,
        events: StreamGroup,
        config: WorkerConfig,
        metrics: WorkerMetrics,
        tracer: Tracer,
    ) -> None:
        self._summaries = summaries
        self._jobs = jobs
        self._events = events
        self._config = config
        self._metrics = metrics
        self._tracer = tracer
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Until `stopping` is set; then jobs in flight get the grace period to finish."""
        await asyncio.gather(
            self._consume_jobs(stopping),
            self._reconcile(stopping),
            self._consume_events(stopping),
        )

    # ---- jobs ----

    async def _consume_jobs(self, stopping: asyncio.Event) -> None:
        failures = 0
        reclaim_due = 0.0  # at once: entries a dead worker left are the oldest work
        while not stopping.is_set():
            free = self._config.concurrency - len(self._in_flight)
            if free <= 0:
                await asyncio.wait(
                    self._in_flight, timeout=_BLOCK_MS / 1000, return_when=asyncio.FIRST_COMPLETED
                )
                continue
            try:
                # Polls run every second: traced, they would bury the real traces.
                with suppress_instrumentation():
                    if time.monotonic() >= reclaim_due:
                        reclaim_due = time.monotonic() + self._config.claim_idle_seconds / 4
                        entries = await self._jobs.reclaim(
                            min_idle_ms=int(self._config.claim_idle_seconds * 1000), count=free
                        )
                    else:
                        entries = await self._jobs.read(count=free, block_ms=_BLOCK_MS)
            except QueueUnavailable as error:
                failures += 1
                self._loop_failed("jobs", error, failures)
                await _pause(stopping, _backoff(failures))
                continue
            failures = 0
            for entry in entries:
                self._start(self._handle_job(entry))
        await self._drain()

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _drain(self) -> None:
        if not self._in_flight:
            return
        _, late = await asyncio.wait(self._in_flight, timeout=self._config.shutdown_grace_seconds)
        for task in late:
            # Left RUNNING: the lease lapses and another worker takes the job over.
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def _handle_job(self, entry: Entry) -> None:
        job_id = _uuid(entry.fields.get("job_id", ""))
        if job_id is None:
            logger.error("malformed job entry dropped", extra={"entry": entry.id})
            await self._ack(self._jobs, entry)
            return
        started = time.perf_counter()
        parent = propagate.extract(dict(entry.fields))
        with self._tracer.start_as_current_span(
            "summary.job process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "redis", "medstation.summary_job.id": job_id},
        ) as span:
            try:
                outcome = await process_job(self._summaries, job_id)
            except Exception:
                # Nothing committed: the entry stays pending and is delivered again.
                logger.exception("summary job not processed", extra={"job": job_id})
                self._metrics.processed.labels("error").inc()
                return
            span.set_attribute("medstation.summary_job.outcome", outcome.value)
            await self._ack(self._jobs, entry)  # only now: the outcome is committed
        self._metrics.processed.labels(outcome.value).inc()
        if outcome in (Outcome.SUCCEEDED, Outcome.FAILED, Outcome.RETRYING):
            self._metrics.duration.labels(outcome.value).observe(time.perf_counter() - started)

    # ---- the reconciler ----

    async def _reconcile(self, stopping: asyncio.Event) -> None:
        failures = 0
        while not stopping.is_set():
            try:
                # Polls run every few seconds: traced, they would bury the real traces.
                with suppress_instrumentation():
                    done = await reconcile(self._summaries)
                    await self._refresh_backlog()
            except Exception as error:
                failures += 1
                self._loop_failed("reconciler", error, failures)
                await _pause(stopping, _backoff(failures))
                continue
            failures = 0
            if done.requeued or done.failed or done.enqueued:
                logger.info(
                    "reconciled jobs",
                    extra={
                        "requeued": done.requeued,
                        "failed": done.failed,
                        "enqueued": done.enqueued,
                    },
                )
            await _pause(stopping, self._config.reconcile_interval_seconds)

    async def _refresh_backlog(self) -> None:
        async with self._summaries.unit_of_work() as uow:
            count, oldest = await uow.jobs.backlog()
        self._metrics.queued.set(count)
        age = 0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
        self._metrics.oldest_queued_age.set(max(age, 0.0))

    # ---- patient events ----

    async def _consume_events(self, stopping: asyncio.Event) -> None:
        failures = 0
        reclaim_due = 0.0
        while not stopping.is_set():
            try:
                with suppress_instrumentation():
                    if time.monotonic() >= reclaim_due:
                        reclaim_due = time.monotonic() + _EVENTS_CLAIM_IDLE_MS / 4000
                        entries = await self._events.reclaim(
                            min_idle_ms=_EVENTS_CLAIM_IDLE_MS, count=_EVENTS_BATCH
                        )
                    else:
                        entries = await self._events.read(count=_EVENTS_BATCH, block_ms=_BLOCK_MS)
                if entries:
                    await self._handle_events(entries)
            except Exception as error:
                # What was not acknowledged is pending, and reclaimed a minute later.
                failures += 1
                self._loop_failed("events", error, failures)
                await _pause(stopping, _backoff(failures))
                continue
            failures = 0
            if 0 < len(entries) < _EVENTS_BATCH:
                # Events trickle in: let more arrive, or the next read would take one or two
                # and pay a batch's whole cost for them. A read on an idle stream still
                # returns the moment an event comes.
                await _pause(stopping, _EVENTS_LINGER_SECONDS)

    async def _handle_events(self, entries: Sequence[Entry]) -> None:
        """One read's entries: handled together, then acknowledged with one XACK."""
        events = _patient_events(entries)
        with self._tracer.start_as_current_span(
            "medstation.patient.events process",
            kind=SpanKind.CONSUMER,
            links=_origins(entries),
            attributes={
                "messaging.system": "redis",
                "messaging.destination.name": self._events.stream,
                "messaging.batch.message_count": len(entries),
            },
        ):
            await handle_patient_events(self._summaries, events)
            # Only now, the whole batch, malformed entries included: had anything failed,
            # all of it would stay pending and be delivered again.
            await self._events.ack([entry.id for entry in entries])
        for event_type, count in Counter(event.event_type for event in events).items():
            self._metrics.events.labels(event_type).inc(count)

    # ---- shared ----

    async def _ack(self, group: StreamGroup, entry: Entry) -> None:
        try:
            await group.ack([entry.id])
        except QueueUnavailable as error:
            # Delivered again later, and then skipped: the job row says it is done.
            logger.warning("ack failed: %s", error, extra={"entry": entry.id})

    def _loop_failed(self, loop: str, error: Exception, failures: int) -> None:
        self._metrics.loop_errors.labels(loop).inc()
        logger.warning(
            "%s loop failed (attempt %d), retrying: %s",
            loop,
            failures,
            error,
            exc_info=failures == 1 and not isinstance(error, QueueUnavailable),
        )


def _patient_events(entries: Sequence[Entry]) -> list[PatientEvent]:
    events: list[PatientEvent] = []
    for entry in entries:
        event = _patient_event(entry)
        if event is None:
            logger.error("malformed patient event dropped", extra={"entry": entry.id})
        else:
            events.append(event)
    return events


def _origins(entries: Sequence[Entry]) -> list[Link]:
    """Links, not a parent: each event's request has long finished; this is its echo."""
    origins = (
        trace.get_current_span(propagate.extract(dict(entry.fields))).get_span_context()
        for entry in entries
    )
    return [Link(origin) for origin in origins if origin.is_valid]


def _patient_event(entry: Entry) -> PatientEvent | None:
    fields = entry.fields
    patient_id = _uuid(fields.get("partition_key", ""))
    try:
        occurred_at = datetime.fromisoformat(fields["created_at"])
        payload = json.loads(fields.get("payload", "{}"))
        event_type, event_id = fields["event_type"], fields["event_id"]
    except (KeyError, ValueError):
        return None
    if patient_id is None or not isinstance(payload, dict) or occurred_at.tzinfo is None:
        return None
    return PatientEvent(event_id, event_type, patient_id, occurred_at, payload)


def _uuid(raw: str) -> str | None:
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return None


def _backoff(failures: int) -> float:
    ceiling = min(_BACKOFF_MAX_SECONDS, 0.2 * 2 ** min(failures, 10))
    # Jitter keeps workers from retrying in lockstep; not a security use of random.
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311


async def _pause(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
