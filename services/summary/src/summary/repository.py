"""Every SQL statement of the summary service. Repositories stage; the unit of work commits.

A job's state changes are conditional UPDATEs on the state (and attempt) the writer
expects: of two workers holding the same job, only the one whose claim is current can
move it on, so a job succeeds once whatever the redeliveries.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Select,
    Update,
    Uuid,
    and_,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from medstation_platform import errors
from medstation_platform.db import UnitOfWork
from summary import tables
from summary.domain import ClaimedJob, JobState, NewJob, QueuedJob, Summary, SummaryJob

_summaries = tables.summaries
_jobs = tables.summary_jobs
_deleted = tables.deleted_patients
_UUID = Uuid(as_uuid=False)
_TIMESTAMP = DateTime(timezone=True)
# The first key of the two-key advisory locks that serialize writes about one patient
# (distinct from every other advisory lock in this database).
_PATIENT_LOCK_CLASS = 53_053
_SUMMARY_PREFIX = "summary__"  # unlike any job column (summary_id)
_UNFINISHED = (JobState.QUEUED.value, JobState.RUNNING.value)


# ---- statements ----


def summary_page_statement(
    patient_id: str, after: tuple[datetime, str] | None, limit: int
) -> Select[Any]:
    """A patient's summaries, newest first."""
    statement = select(_summaries).where(_summaries.c.patient_id == patient_id)
    if after is not None:
        generated_at, summary_id = after
        bound = tuple_(literal(generated_at, _TIMESTAMP), literal(summary_id, _UUID))
        statement = statement.where(tuple_(_summaries.c.generated_at, _summaries.c.id) < bound)
    order = (_summaries.c.generated_at.desc(), _summaries.c.id.desc())
    return statement.order_by(*order).limit(limit)


def stale_marks_statement(last_changes: Mapping[str, datetime]) -> Update:
    """Every summary of the given patients written at or before the patient's change, and
    not flagged yet, flagged stale."""
    changes = (
        func.unnest(
            literal(list(last_changes), ARRAY(_UUID)),
            literal(list(last_changes.values()), ARRAY(_TIMESTAMP)),
        )
        .table_valued("patient_id", "changed_at")
        .render_derived(name="changes")
    )
    outdated = (
        select(_summaries.c.id)
        .join(changes, _summaries.c.patient_id == changes.c.patient_id)
        .where(_summaries.c.generated_at <= changes.c.changed_at, _summaries.c.stale.is_(False))
        # Rows locked in one order (by id): two workers marking overlapping patients at once
        # wait for each other instead of deadlocking. NO KEY: a job may reference the row.
        .order_by(_summaries.c.id)
        .with_for_update(of=_summaries, key_share=True)
    )
    return update(_summaries).where(_summaries.c.id.in_(outdated)).values(stale=True)


def job_statement(job_id: str) -> Select[Any]:
    """The job with its summary, if it has one."""
    summary_columns = [column.label(_SUMMARY_PREFIX + column.name) for column in _summaries.c]
    joined = _jobs.outerjoin(_summaries, _summaries.c.id == _jobs.c.summary_id)
    return select(_jobs, *summary_columns).select_from(joined).where(_jobs.c.id == job_id)


def _expected(job_id: str, state: JobState, attempt: int) -> ColumnElement[bool]:
    return and_(_jobs.c.id == job_id, _jobs.c.state == state.value, _jobs.c.attempts == attempt)


def _locked_ids(condition: ColumnElement[bool], order: Any, limit: int) -> Select[Any]:
    # SKIP LOCKED: several workers' reconcilers split the rows instead of queueing on them.
    return (
        select(_jobs.c.id)
        .where(condition)
        .order_by(order)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


# ---- rows to domain objects ----


def _summary(row: Any, prefix: str = "") -> Summary:
    def value(name: str) -> Any:
        return getattr(row, prefix + name)

    return Summary(
        id=str(value("id")),
        patient_id=str(value("patient_id")),
        fingerprint=value("fingerprint"),
        text=value("text"),
        patient_age=value("patient_age"),
        note_count=value("note_count"),
        provider=value("provider"),
        model=value("model"),
        latency_ms=value("latency_ms"),
        generated_at=value("generated_at"),
        stale=value("stale"),
    )


def _job(row: Any, *, with_summary: bool = True) -> SummaryJob:
    has_summary = with_summary and getattr(row, _SUMMARY_PREFIX + "id") is not None
    return SummaryJob(
        id=str(row.id),
        patient_id=str(row.patient_id),
        creator_id=str(row.creator_id),
        creator_role=row.creator_role,
        request_id=None if row.request_id is None else str(row.request_id),
        state=JobState(row.state),
        attempts=row.attempts,
        summary=_summary(row, _SUMMARY_PREFIX) if has_summary else None,
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _trace_context(raw: Mapping[str, str] | None) -> dict[str, str]:
    return dict(raw or {})


# ---- repositories ----


class SummaryRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def find(self, patient_id: str, fingerprint: str) -> Summary | None:
        statement = select(_summaries).where(
            _summaries.c.patient_id == patient_id, _summaries.c.fingerprint == fingerprint
        )
        row = (await self._connection.execute(statement)).first()
        return None if row is None else _summary(row)

    async def add(self, summary: Summary) -> Summary:
        """Stores `summary`, or returns the one already stored for the same chart.

        A concurrent writer of the same chart holds the unique key's index entry until it
        commits; ON CONFLICT waits for that outcome, so exactly one row is ever written.
        """
        values = {**vars(summary)}
        statement = pg_insert(_summaries).values(values).on_conflict_do_nothing()
        inserted = await self._connection.execute(statement.returning(_summaries.c.id))
        if inserted.first() is not None:
            return summary
        stored = await self.find(summary.patient_id, summary.fingerprint)
        if stored is None:  # removed again since the conflict: a purge won the race
            raise errors.Aborted()
        return stored

    async def list_page(
        self, patient_id: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[Summary]:
        result = await self._connection.execute(summary_page_statement(patient_id, after, limit))
        return [_summary(row) for row in result]

    async def mark_stale(self, last_changes: Mapping[str, datetime]) -> int:
        """Flags, in one statement, each patient's summaries written before its record last
        changed (`last_changes`: patient id → when)."""
        return (await self._connection.execute(stale_marks_statement(last_changes))).rowcount

    async def delete_for_patient(self, patient_id: str) -> int:
        statement = delete(_summaries).where(_summaries.c.patient_id == patient_id)
        return (await self._connection.execute(statement)).rowcount


class JobRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, new: NewJob) -> SummaryJob:
        """Stores the job, or returns the first job of the creator's same request_id."""
        job = new.job
        values = {
            "id": job.id,
            "patient_id": job.patient_id,
            "creator_id": job.creator_id,
            "creator_role": job.creator_role,
            "request_id": job.request_id,
            "state": job.state.value,
            "attempts": job.attempts,
            "enqueued_at": new.enqueued_at,
            "error": job.error,
            "sealed_credentials": new.sealed_credentials,
            "trace_context": dict(new.trace_context) or None,
            "created_at": job.created_at,
            "updated_at": job.updated_at,
        }
        statement = pg_insert(_jobs).values(values).on_conflict_do_nothing()
        inserted = await self._connection.execute(statement.returning(_jobs.c.id))
        if inserted.first() is not None:
            return job
        first = select(_jobs.c.id).where(
            _jobs.c.creator_id == job.creator_id, _jobs.c.request_id == job.request_id
        )
        first_id = await self._connection.scalar(first)
        stored = None if first_id is None else await self.get(str(first_id))
        if stored is None:  # removed again since the conflict: a purge won the race
            raise errors.Aborted()
        return stored

    async def get(self, job_id: str) -> SummaryJob | None:
        row = (await self._connection.execute(job_statement(job_id))).first()
        return None if row is None else _job(row)

    async def claim(
        self, job_id: str, *, now: datetime, lease_until: datetime, max_attempts: int
    ) -> ClaimedJob | None:
        """QUEUED (or RUNNING with a lapsed lease) → RUNNING, counting an attempt; None
        when the job is not there to claim (ended, held by a live worker, out of attempts)."""
        claimable = or_(
            _jobs.c.state == JobState.QUEUED.value,
            and_(_jobs.c.state == JobState.RUNNING.value, _jobs.c.lease_expires_at < now),
        )
        statement = (
            update(_jobs)
            .where(_jobs.c.id == job_id, _jobs.c.attempts < max_attempts, claimable)
            .values(
                state=JobState.RUNNING.value,
                attempts=_jobs.c.attempts + 1,
                lease_expires_at=lease_until,
                updated_at=now,
            )
            .returning(*_jobs.c)
        )
        row = (await self._connection.execute(statement)).first()
        if row is None:
            return None
        job = _job(row, with_summary=False)
        return ClaimedJob(
            job, row.attempts, row.sealed_credentials, _trace_context(row.trace_context)
        )

    async def renew(self, job_id: str, attempt: int, *, lease_until: datetime) -> bool:
        statement = (
            update(_jobs)
            .where(_expected(job_id, JobState.RUNNING, attempt))
            .values(lease_expires_at=lease_until)
        )
        return (await self._connection.execute(statement)).rowcount == 1

    async def succeed(self, job_id: str, attempt: int, *, summary_id: str, now: datetime) -> bool:
        return await self._finish(
            job_id, attempt, state=JobState.SUCCEEDED, now=now, summary_id=summary_id, error=""
        )

    async def requeue(self, job_id: str, attempt: int, *, now: datetime) -> bool:
        """RUNNING → QUEUED for another attempt (the creator's credentials are kept)."""
        statement = (
            update(_jobs)
            .where(_expected(job_id, JobState.RUNNING, attempt))
            .values(
                state=JobState.QUEUED.value,
                lease_expires_at=None,
                enqueued_at=now,
                stream_entry_id=None,
                updated_at=now,
            )
        )
        return (await self._connection.execute(statement)).rowcount == 1

    async def fail(
        self, job_id: str, attempt: int, *, error: str, now: datetime, state: JobState
    ) -> bool:
        """→ FAILED, if the job is still in `state` at `attempt`."""
        return await self._finish(
            job_id, attempt, state=JobState.FAILED, now=now, error=error, expected=state
        )

    async def _finish(
        self,
        job_id: str,
        attempt: int,
        *,
        state: JobState,
        now: datetime,
        error: str,
        summary_id: str | None = None,
        expected: JobState = JobState.RUNNING,
    ) -> bool:
        statement = (
            update(_jobs)
            .where(_expected(job_id, expected, attempt))
            .values(
                state=state.value,
                summary_id=summary_id,
                error=error,
                lease_expires_at=None,
                # The creator's token has no use once the job has ended.
                sealed_credentials=None,
                updated_at=now,
            )
        )
        return (await self._connection.execute(statement)).rowcount == 1

    async def set_stream_entry(self, job_id: str, entry_id: str) -> None:
        statement = (
            update(_jobs)
            .where(_jobs.c.id == job_id, _jobs.c.state == JobState.QUEUED.value)
            .values(stream_entry_id=entry_id)
        )
        await self._connection.execute(statement)

    async def lapsed(self, *, now: datetime, limit: int) -> list[ClaimedJob]:
        """RUNNING jobs whose worker stopped renewing its claim, locked until commit."""
        lapsed = and_(_jobs.c.state == JobState.RUNNING.value, _jobs.c.lease_expires_at < now)
        ids = _locked_ids(lapsed, _jobs.c.lease_expires_at, limit)
        result = await self._connection.execute(select(_jobs).where(_jobs.c.id.in_(ids)))
        return [
            ClaimedJob(
                _job(row, with_summary=False), row.attempts, None, _trace_context(row.trace_context)
            )
            for row in result
        ]

    async def due_for_enqueue(
        self, *, now: datetime, enqueued_before: datetime, limit: int
    ) -> list[QueuedJob]:
        """QUEUED jobs not appended to the stream since `enqueued_before`; marks them
        enqueued now, so that concurrent reconcilers each take different jobs."""
        waiting = and_(
            _jobs.c.state == JobState.QUEUED.value,
            or_(_jobs.c.enqueued_at.is_(None), _jobs.c.enqueued_at < enqueued_before),
        )
        ids = _locked_ids(waiting, _jobs.c.enqueued_at.nulls_first(), limit)
        statement = (
            update(_jobs)
            .where(_jobs.c.id.in_(ids))
            .values(enqueued_at=now)
            .returning(_jobs.c.id, _jobs.c.trace_context, _jobs.c.stream_entry_id)
        )
        result = await self._connection.execute(statement)
        return [
            QueuedJob(str(row.id), _trace_context(row.trace_context), row.stream_entry_id)
            for row in result
        ]

    async def backlog(self) -> tuple[int, datetime | None]:
        """How many jobs wait in QUEUED, and when the oldest of them was created."""
        statement = select(func.count(), func.min(_jobs.c.created_at)).where(
            _jobs.c.state == JobState.QUEUED.value
        )
        count, oldest = (await self._connection.execute(statement)).one()
        return int(count), oldest

    async def delete_for_patient(self, patient_id: str) -> int:
        statement = delete(_jobs).where(_jobs.c.patient_id == patient_id)
        return (await self._connection.execute(statement)).rowcount


class DeletedPatients:
    """Patients the patient-record service deleted: nothing is stored about them again."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def lock(self, patient_id: str) -> None:
        """Serializes, until commit, every write about the patient: a summary being stored
        and the patient's purge cannot interleave, so no summary outlives its patient."""
        await self._connection.execute(
            text("SELECT pg_advisory_xact_lock(:lock_class, hashtext(:patient_id))"),
            {"lock_class": _PATIENT_LOCK_CLASS, "patient_id": patient_id},
        )

    async def is_deleted(self, patient_id: str) -> bool:
        statement = select(_deleted.c.patient_id).where(_deleted.c.patient_id == patient_id)
        return (await self._connection.scalar(statement)) is not None

    async def mark_deleted(self, patient_id: str, *, at: datetime) -> None:
        statement = pg_insert(_deleted).values(patient_id=patient_id, deleted_at=at)
        await self._connection.execute(statement.on_conflict_do_nothing())


class SummaryUnitOfWork(UnitOfWork):
    summaries: SummaryRepository
    jobs: JobRepository
    deleted_patients: DeletedPatients

    def bind(self, connection: AsyncConnection) -> None:
        self.summaries = SummaryRepository(connection)
        self.jobs = JobRepository(connection)
        self.deleted_patients = DeletedPatients(connection)
