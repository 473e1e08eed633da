"""What the summary service does for its callers, one function per RPC; each commits at most
once per step.

Access: the patient-record service decides who may see a patient: every use case asks it
as the caller (their token) before answering, and a patient it will not show does not
exist here either. Summaries are stored by the fingerprint of what they were written from
(domain.fingerprint): an unchanged chart reuses its summary, any change writes a new one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from medstation_llm.model import Summarizer
from medstation_llm.types import ChartNote, PatientChart
from medstation_platform import errors
from medstation_platform.auth.principal import Principal
from medstation_platform.pagination import JsonScalar, Page, PageTokenCodec, resolve_page_size
from medstation_platform.rpc.client import outgoing_timeout
from summary.credentials import CredentialSealer
from summary.domain import (
    Chart,
    JobState,
    NewJob,
    PatientHasNoNotes,
    PatientNotFound,
    QueuedJob,
    RequestIdReused,
    Summary,
    SummaryJob,
    SummaryJobNotFound,
    WatchTimeLimit,
    age_on,
    fingerprint,
)
from summary.ports import JobQueue, PatientDirectory, QueueUnavailable
from summary.repository import SummaryUnitOfWork
from summary.single_flight import SingleFlight

logger = logging.getLogger(__name__)

# How long a step may take, given what it would take by default: the RPC's remaining
# deadline bounds it in the service, the job's in the worker.
Budget = Callable[[float], float]


@dataclass(frozen=True)
class Policy:
    """The knobs of summaries and jobs, from settings."""

    patient_timeout_seconds: float = 10.0
    llm_timeout_seconds: float = 60.0
    job_timeout_seconds: float = 120.0
    job_max_attempts: int = 3
    job_lease_seconds: float = 30.0
    requeue_after_seconds: float = 30.0
    watch_poll_seconds: float = 0.3
    watch_max_seconds: float = 600.0


@dataclass(frozen=True)
class Summaries:
    """The summary service's collaborators, built once by `bootstrap`."""

    unit_of_work: Callable[[], SummaryUnitOfWork]
    patients: PatientDirectory
    summarizer: Summarizer
    queue: JobQueue
    sealer: CredentialSealer
    page_tokens: PageTokenCodec
    policy: Policy
    clock: Callable[[], datetime]
    trace_context: Callable[[], dict[str, str]]  # the current W3C trace context, to carry
    flights: SingleFlight[Summary] = field(default_factory=SingleFlight)


@dataclass(frozen=True)
class PageRequest:
    page_size: int
    page_token: str


# ---- summaries ----


async def get_summary(summaries: Summaries, caller: Principal, patient_id: str) -> Summary:
    timeout = outgoing_timeout(summaries.policy.patient_timeout_seconds)
    chart = await summaries.patients.chart(caller, patient_id, timeout_seconds=timeout)
    return await summary_of(summaries, chart, outgoing_timeout)


async def list_summaries(
    summaries: Summaries, caller: Principal, patient_id: str, page: PageRequest
) -> Page[Summary]:
    limit = resolve_page_size(page.page_size)
    scope = json.dumps(["summaries", caller.user_id, patient_id], separators=(",", ":"))
    after = _decode_cursor(summaries.page_tokens, scope, page.page_token)
    timeout = outgoing_timeout(summaries.policy.patient_timeout_seconds)
    await summaries.patients.check_visible(caller, patient_id, timeout_seconds=timeout)
    async with summaries.unit_of_work().autocommit() as uow:
        rows = await uow.summaries.list_page(patient_id, after=after, limit=limit + 1)
    if len(rows) <= limit:
        return Page(rows, "")
    rows = rows[:limit]
    last = rows[-1]
    return Page(rows, summaries.page_tokens.encode(scope, [last.generated_at.isoformat(), last.id]))


async def summary_of(summaries: Summaries, chart: Chart, budget: Budget) -> Summary:
    """The stored summary of exactly this chart, or a new one written now.

    Concurrent requests for the same chart in this process share one model call; across
    processes the unique (patient, fingerprint) key keeps one row whoever writes first.
    """
    if not chart.notes:
        raise PatientHasNoNotes()
    now = summaries.clock()
    age = age_on(chart.date_of_birth, now.date())
    writer = summaries.summarizer
    key = fingerprint(chart, age=age, provider=writer.provider, model=writer.model)
    async with summaries.unit_of_work().autocommit() as uow:  # reads only
        stored = await uow.summaries.find(chart.patient_id, key)
    if stored is not None:
        return stored

    async def write() -> Summary:
        return await _write(summaries, chart, key, age, now.date(), budget)

    return await summaries.flights.run(f"{chart.patient_id}/{key}", write)


async def _write(
    summaries: Summaries, chart: Chart, key: str, age: int, as_of: date, budget: Budget
) -> Summary:
    model_chart = PatientChart(
        age_years=age,
        sex=chart.sex,
        date_of_birth=chart.date_of_birth,
        as_of=as_of,
        notes=tuple(ChartNote(note.note_time, note.content) for note in chart.notes),
    )
    timeout = budget(summaries.policy.llm_timeout_seconds)
    completion = await summaries.summarizer.summarize(model_chart, timeout_seconds=timeout)
    summary = Summary(
        id=str(uuid.uuid4()),
        patient_id=chart.patient_id,
        fingerprint=key,
        text=completion.text,
        patient_age=age,
        note_count=len(chart.notes),
        provider=completion.provider,
        model=completion.model,
        latency_ms=completion.latency_ms,
        generated_at=summaries.clock(),
    )
    async with summaries.unit_of_work() as uow:
        await uow.deleted_patients.lock(chart.patient_id)
        if await uow.deleted_patients.is_deleted(chart.patient_id):
            raise PatientNotFound()  # deleted while the model was writing
        stored = await uow.summaries.add(summary)
        await uow.commit()
    return stored


# ---- jobs ----


async def create_summary_job(
    summaries: Summaries, caller: Principal, patient_id: str, *, request_id: str
) -> SummaryJob:
    """A QUEUED job, committed before it is announced on the stream: if the stream is
    down the job still stands, and the worker's reconciler announces it later."""
    timeout = outgoing_timeout(summaries.policy.patient_timeout_seconds)
    await summaries.patients.check_visible(caller, patient_id, timeout_seconds=timeout)
    now = summaries.clock()
    job = SummaryJob(
        id=str(uuid.uuid4()),
        patient_id=patient_id,
        creator_id=caller.user_id,
        creator_role=caller.role,
        request_id=request_id or None,
        state=JobState.QUEUED,
        attempts=0,
        summary=None,
        error="",
        created_at=now,
        updated_at=now,
    )
    trace_context = summaries.trace_context()
    new = NewJob(job, summaries.sealer.seal(caller.token, job_id=job.id), trace_context, now)
    async with summaries.unit_of_work() as uow:
        await uow.deleted_patients.lock(patient_id)
        if await uow.deleted_patients.is_deleted(patient_id):
            raise PatientNotFound()
        stored = await uow.jobs.add(new)
        await uow.commit()
    if stored.id != job.id:  # a retry: the first request's job
        if stored.patient_id != patient_id:
            raise RequestIdReused()
        return stored
    await enqueue(summaries, QueuedJob(job.id, trace_context))
    return stored


async def get_summary_job(summaries: Summaries, caller: Principal, job_id: str) -> SummaryJob:
    return await _visible_job(summaries, caller, job_id)


async def watch_summary_job(
    summaries: Summaries, caller: Principal, job_id: str
) -> AsyncIterator[SummaryJob]:
    """The job now, then each new version of it, until it ends. Access is checked before
    the first message; the database is read every `watch_poll_seconds`, which works the
    same whether or not Redis is up."""
    job = await _visible_job(summaries, caller, job_id)
    yield job
    give_up_at = time.monotonic() + summaries.policy.watch_max_seconds
    while not job.state.ended:
        if time.monotonic() >= give_up_at:
            raise WatchTimeLimit()
        await asyncio.sleep(summaries.policy.watch_poll_seconds)
        async with summaries.unit_of_work() as uow:
            current = await uow.jobs.get(job_id)
        if current is None:  # purged with its patient
            raise SummaryJobNotFound()
        if current.changed != job.changed:
            job = current
            yield job


async def enqueue(summaries: Summaries, job: QueuedJob) -> bool:
    """Announce the job on the stream; if the stream is down, the reconciler will."""
    try:
        entry_id = await summaries.queue.enqueue(job.id, job.trace_context)
    except QueueUnavailable as error:
        logger.warning("job not enqueued, left to the reconciler: %s", error, extra={"job": job.id})
        return False
    try:
        async with summaries.unit_of_work().autocommit() as uow:  # one statement
            await uow.jobs.set_stream_entry(job.id, entry_id)
            await uow.commit()
    except errors.Unavailable:
        # Only an optimisation is lost: the reconciler re-checks a job without it.
        logger.warning("stream entry id not recorded", extra={"job": job.id})
    return True


async def _visible_job(summaries: Summaries, caller: Principal, job_id: str) -> SummaryJob:
    async with summaries.unit_of_work().autocommit() as uow:  # reads only
        job = await uow.jobs.get(job_id)
    if job is None:
        raise SummaryJobNotFound()
    timeout = outgoing_timeout(summaries.policy.patient_timeout_seconds)
    try:
        await summaries.patients.check_visible(caller, job.patient_id, timeout_seconds=timeout)
    except PatientNotFound:
        raise SummaryJobNotFound() from None
    return job


def _decode_cursor(codec: PageTokenCodec, scope: str, token: str) -> tuple[datetime, str] | None:
    if not token:
        return None
    key: list[JsonScalar] = codec.decode(scope, token)
    try:
        generated_at, last_id = key
        return datetime.fromisoformat(str(generated_at)), str(uuid.UUID(str(last_id)))
    except (ValueError, TypeError):
        # Signed by us for this scope, yet malformed: a token from an older release.
        raise errors.InvalidPageToken() from None
