"""In-memory stand-ins for the summary service's I/O: the unit of work, the patient-record
service, the model, the job stream, the clock.

The fake repositories subclass the real ones so mypy holds them to the same method
signatures; they never touch the connection the real ones would use. Their conditional
updates mirror the SQL's WHERE clauses.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from devstack import fake_database
from devstack.fake_database import StagedUnitOfWork
from medstation_llm.types import Completion, PatientChart
from medstation_platform import errors
from medstation_platform.auth.principal import Principal
from summary.domain import (
    Chart,
    ClaimedJob,
    CredentialsRejected,
    JobState,
    NewJob,
    PatientNotFound,
    QueuedJob,
    Summary,
    SummaryJob,
    TraceContext,
)
from summary.ports import QueueUnavailable
from summary.repository import DeletedPatients, JobRepository, SummaryRepository, SummaryUnitOfWork


@dataclass(frozen=True)
class JobRow:
    job: SummaryJob
    sealed_credentials: bytes | None
    trace_context: TraceContext
    enqueued_at: datetime | None
    lease_expires_at: datetime | None = None
    stream_entry_id: str | None = None
    summary_id: str | None = None


@dataclass
class Tables:
    summaries: dict[str, Summary] = field(default_factory=dict)
    jobs: dict[str, JobRow] = field(default_factory=dict)
    deleted: dict[str, datetime] = field(default_factory=dict)

    def copy(self) -> Tables:
        # Rows are frozen dataclasses: copying the containers isolates a transaction.
        return Tables(dict(self.summaries), dict(self.jobs), dict(self.deleted))


class FakeSummaries(SummaryRepository):
    def __init__(self, tables: Tables, stale_marks: list[dict[str, datetime]]) -> None:
        self._tables = tables
        self._stale_marks = stale_marks

    async def find(self, patient_id: str, fingerprint: str) -> Summary | None:
        for summary in self._tables.summaries.values():
            if (summary.patient_id, summary.fingerprint) == (patient_id, fingerprint):
                return summary
        return None

    async def add(self, summary: Summary) -> Summary:
        stored = await self.find(summary.patient_id, summary.fingerprint)
        if stored is not None:
            return stored
        self._tables.summaries[summary.id] = summary
        return summary

    async def list_page(
        self, patient_id: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[Summary]:
        rows = [s for s in self._tables.summaries.values() if s.patient_id == patient_id]
        rows.sort(key=lambda s: (s.generated_at, s.id), reverse=True)
        if after is not None:
            rows = [s for s in rows if (s.generated_at, s.id) < after]
        return rows[:limit]

    async def mark_stale(self, last_changes: Mapping[str, datetime]) -> int:
        self._stale_marks.append(dict(last_changes))
        marked = 0
        for summary in list(self._tables.summaries.values()):
            changed_at = last_changes.get(summary.patient_id)
            if changed_at is not None and summary.generated_at <= changed_at and not summary.stale:
                self._tables.summaries[summary.id] = replace(summary, stale=True)
                marked += 1
        return marked

    async def delete_for_patient(self, patient_id: str) -> int:
        ids = [s.id for s in self._tables.summaries.values() if s.patient_id == patient_id]
        for summary_id in ids:
            del self._tables.summaries[summary_id]
        return len(ids)


class FakeJobs(JobRepository):
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def add(self, new: NewJob) -> SummaryJob:
        job = new.job
        for row in self._tables.jobs.values():
            first = row.job
            if job.request_id and (first.creator_id, first.request_id) == (
                job.creator_id,
                job.request_id,
            ):
                return await self._get(first.id)
        self._tables.jobs[job.id] = JobRow(
            job, new.sealed_credentials, dict(new.trace_context), new.enqueued_at
        )
        return job

    async def get(self, job_id: str) -> SummaryJob | None:
        return None if job_id not in self._tables.jobs else await self._get(job_id)

    async def _get(self, job_id: str) -> SummaryJob:
        row = self._tables.jobs[job_id]
        summary = None if row.summary_id is None else self._tables.summaries[row.summary_id]
        return replace(row.job, summary=summary)

    async def claim(
        self, job_id: str, *, now: datetime, lease_until: datetime, max_attempts: int
    ) -> ClaimedJob | None:
        row = self._tables.jobs.get(job_id)
        if row is None or row.job.attempts >= max_attempts:
            return None
        lapsed = row.lease_expires_at is not None and row.lease_expires_at < now
        if not (row.job.state == JobState.QUEUED or (row.job.state == JobState.RUNNING and lapsed)):
            return None
        attempt = row.job.attempts + 1
        job = replace(row.job, state=JobState.RUNNING, attempts=attempt, updated_at=now)
        self._tables.jobs[job_id] = replace(row, job=job, lease_expires_at=lease_until)
        return ClaimedJob(job, attempt, row.sealed_credentials, row.trace_context)

    def _expected(self, job_id: str, state: JobState, attempt: int) -> JobRow | None:
        row = self._tables.jobs.get(job_id)
        if row is None or (row.job.state, row.job.attempts) != (state, attempt):
            return None
        return row

    async def renew(self, job_id: str, attempt: int, *, lease_until: datetime) -> bool:
        row = self._expected(job_id, JobState.RUNNING, attempt)
        if row is not None:
            self._tables.jobs[job_id] = replace(row, lease_expires_at=lease_until)
        return row is not None

    async def succeed(self, job_id: str, attempt: int, *, summary_id: str, now: datetime) -> bool:
        row = self._expected(job_id, JobState.RUNNING, attempt)
        if row is None:
            return False
        job = replace(row.job, state=JobState.SUCCEEDED, error="", updated_at=now)
        self._tables.jobs[job_id] = replace(
            row, job=job, summary_id=summary_id, sealed_credentials=None, lease_expires_at=None
        )
        return True

    async def requeue(self, job_id: str, attempt: int, *, now: datetime) -> bool:
        row = self._expected(job_id, JobState.RUNNING, attempt)
        if row is None:
            return False
        job = replace(row.job, state=JobState.QUEUED, updated_at=now)
        self._tables.jobs[job_id] = replace(
            row, job=job, lease_expires_at=None, enqueued_at=now, stream_entry_id=None
        )
        return True

    async def fail(
        self, job_id: str, attempt: int, *, error: str, now: datetime, state: JobState
    ) -> bool:
        row = self._expected(job_id, state, attempt)
        if row is None:
            return False
        job = replace(row.job, state=JobState.FAILED, error=error, updated_at=now)
        self._tables.jobs[job_id] = replace(
            row, job=job, sealed_credentials=None, lease_expires_at=None
        )
        return True

    async def set_stream_entry(self, job_id: str, entry_id: str) -> None:
        row = self._tables.jobs.get(job_id)
        if row is not None and row.job.state == JobState.QUEUED:
            self._tables.jobs[job_id] = replace(row, stream_entry_id=entry_id)

    async def lapsed(self, *, now: datetime, limit: int) -> list[ClaimedJob]:
        rows = [
            row
            for row in self._tables.jobs.values()
            if row.job.state == JobState.RUNNING
            and row.lease_expires_at is not None
            and row.lease_expires_at < now
        ]
        return [
            ClaimedJob(row.job, row.job.attempts, None, row.trace_context) for row in rows[:limit]
        ]

    async def due_for_enqueue(
        self, *, now: datetime, enqueued_before: datetime, limit: int
    ) -> list[QueuedJob]:
        due: list[QueuedJob] = []
        for row in list(self._tables.jobs.values()):
            if row.job.state != JobState.QUEUED or len(due) == limit:
                continue
            if row.enqueued_at is None or row.enqueued_at < enqueued_before:
                self._tables.jobs[row.job.id] = replace(row, enqueued_at=now)
                due.append(QueuedJob(row.job.id, row.trace_context, row.stream_entry_id))
        return due

    async def backlog(self) -> tuple[int, datetime | None]:
        queued = [r.job.created_at for r in self._tables.jobs.values() if r.job.state == "QUEUED"]
        return len(queued), min(queued, default=None)

    async def delete_for_patient(self, patient_id: str) -> int:
        ids = [r.job.id for r in self._tables.jobs.values() if r.job.patient_id == patient_id]
        for job_id in ids:
            del self._tables.jobs[job_id]
        return len(ids)


class FakeDeletedPatients(DeletedPatients):
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def lock(self, patient_id: str) -> None:
        """One event loop, no concurrent transactions: nothing to serialize."""

    async def is_deleted(self, patient_id: str) -> bool:
        return patient_id in self._tables.deleted

    async def mark_deleted(self, patient_id: str, *, at: datetime) -> None:
        self._tables.deleted.setdefault(patient_id, at)


class FakeDatabase(fake_database.FakeDatabase[Tables]):
    def __init__(self) -> None:
        super().__init__(Tables())
        # Each mark_stale call's argument: one statement's worth of patients.
        self.stale_marks: list[dict[str, datetime]] = []

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    def row(self, job_id: str) -> JobRow:
        return self.committed.jobs[job_id]


class FakeUnitOfWork(StagedUnitOfWork[Tables], SummaryUnitOfWork):
    def __init__(self, database: FakeDatabase) -> None:
        super().__init__(database)
        self._stale_marks = database.stale_marks

    def bind_tables(self, tables: Tables) -> None:
        self.summaries = FakeSummaries(tables, self._stale_marks)
        self.jobs = FakeJobs(tables)
        self.deleted_patients = FakeDeletedPatients(tables)


class FakePatients:
    """The patient-record service: charts, care teams, and the tokens it accepts."""

    def __init__(self) -> None:
        self.charts: dict[str, Chart] = {}
        self.care_teams: dict[str, set[str]] = {}
        self.rejected_tokens: set[str] = set()
        self.failures: list[Exception] = []  # raised by the next calls, in order
        self.reads: list[tuple[str, str]] = []  # (caller token, patient id)

    def add(self, chart: Chart, *members: str) -> None:
        self.charts[chart.patient_id] = chart
        self.care_teams[chart.patient_id] = set(members)

    async def check_visible(
        self, caller: Principal, patient_id: str, *, timeout_seconds: float
    ) -> None:
        self._check(caller, patient_id)

    async def chart(self, caller: Principal, patient_id: str, *, timeout_seconds: float) -> Chart:
        self._check(caller, patient_id)
        return self.charts[patient_id]

    def _check(self, caller: Principal, patient_id: str) -> None:
        self.reads.append((caller.token, patient_id))
        if self.failures:
            raise self.failures.pop(0)
        if caller.token in self.rejected_tokens:
            raise CredentialsRejected()
        team = self.care_teams.get(patient_id)
        if team is None or not (caller.is_admin or caller.user_id in team):
            raise PatientNotFound()


class FakeSummarizer:
    """Writes a recognisable text from the chart; counts its calls; can fail or dawdle."""

    def __init__(self, provider: str = "fake", model: str = "fake-1") -> None:
        self._provider = provider
        self._model = model
        self.calls = 0
        self.delay_seconds = 0.0
        self.failures: list[Exception] = []

    @property
    def provider(self) -> str:
        return self._provider

    @property
    def model(self) -> str:
        return self._model

    async def summarize(self, chart: PatientChart, *, timeout_seconds: float) -> Completion:
        self.calls += 1
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.failures:
            raise self.failures.pop(0)
        newest = chart.notes[0].content if chart.notes else ""
        text = f"{chart.age_years}-year-old {chart.sex}, {len(chart.notes)} notes. {newest}"
        return Completion(text, self._provider, self._model, 10, 10, latency_ms=42)

    async def aclose(self) -> None:
        return None


class FakeQueue:
    """The job stream: what was appended, and whether Redis answers."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, dict[str, str]]] = {}
        self.down = False
        self._ids = itertools.count(1)

    async def enqueue(self, job_id: str, trace_context: TraceContext) -> str:
        if self.down:
            raise QueueUnavailable("connection refused")
        entry_id = f"{next(self._ids)}-0"
        self.entries[entry_id] = (job_id, dict(trace_context))
        return entry_id

    async def present(self, entry_ids: Sequence[str]) -> set[str]:
        if self.down:
            raise QueueUnavailable("connection refused")
        return {entry_id for entry_id in entry_ids if entry_id in self.entries}

    def job_ids(self) -> list[str]:
        return [job_id for job_id, _ in self.entries.values()]

    def wipe(self) -> None:
        self.entries.clear()


class FixedClock:
    """Time stands still until a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def unavailable() -> errors.Unavailable:
    return errors.Unavailable("the model is down")
