"""Summaries, summary jobs and the charts they are written from, as the business sees them.

No I/O here. A chart is what the patient-record service answered; a summary is stored
with the fingerprint of everything its text was written from, so an unchanged chart
reuses it and any change writes a new one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum

from medstation_platform import errors

FINGERPRINT_VERSION = "v1"


class JobState(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @property
    def ended(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED)


@dataclass(frozen=True)
class Note:
    id: str
    content: str
    note_time: datetime


@dataclass(frozen=True)
class Chart:
    """A patient's demographics and every note, newest note_time first."""

    patient_id: str
    date_of_birth: date
    sex: str
    notes: tuple[Note, ...]


def age_on(born: date, day: date) -> int:
    """Whole years between `born` and `day` (a 29 February birthday counts on 1 March)."""
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def fingerprint(chart: Chart, *, age: int, provider: str, model: str) -> str:
    """sha256 of what a summary is written from: the notes (id, content hash, time, in
    order), the demographics its text states, and who writes it.

    One JSON array per line, so no two different inputs can encode alike.
    """
    digest = hashlib.sha256()
    header = [FINGERPRINT_VERSION, provider, model, chart.sex, chart.date_of_birth.isoformat(), age]
    digest.update(json.dumps(header).encode() + b"\n")
    for note in chart.notes:
        content_hash = hashlib.sha256(note.content.encode()).hexdigest()
        note_time = note.note_time.astimezone(UTC).isoformat()
        digest.update(json.dumps([note.id, content_hash, note_time]).encode() + b"\n")
    return digest.hexdigest()


@dataclass(frozen=True)
class Summary:
    id: str
    patient_id: str
    fingerprint: str
    text: str
    patient_age: int
    note_count: int
    provider: str
    model: str
    latency_ms: int
    generated_at: datetime
    # Set when the patient's record changed after the summary was written.
    stale: bool = False


@dataclass(frozen=True)
class SummaryJob:
    id: str
    patient_id: str
    creator_id: str
    creator_role: str
    request_id: str | None
    state: JobState
    attempts: int
    summary: Summary | None
    error: str
    created_at: datetime
    updated_at: datetime

    @property
    def changed(self) -> tuple[JobState, datetime]:
        """What a watcher compares to tell one version of the job from the next."""
        return (self.state, self.updated_at)


TraceContext = Mapping[str, str]


@dataclass(frozen=True)
class NewJob:
    """A job as CreateSummaryJob stores it, with what the worker needs to act for its
    creator: the creator's sealed access token and the request's trace context."""

    job: SummaryJob
    sealed_credentials: bytes
    trace_context: TraceContext
    enqueued_at: datetime


@dataclass(frozen=True)
class ClaimedJob:
    """A job a worker holds: `attempt` is the claim's number, which every later write of
    this worker is conditional on."""

    job: SummaryJob
    attempt: int
    sealed_credentials: bytes | None
    trace_context: TraceContext


@dataclass(frozen=True)
class QueuedJob:
    """What is needed to put a job on the stream (again)."""

    id: str
    trace_context: TraceContext
    stream_entry_id: str | None = None


@dataclass(frozen=True)
class PatientEvent:
    """A fact the patient-record service published about a patient (ids, never PHI)."""

    event_id: str
    event_type: str
    patient_id: str
    occurred_at: datetime
    payload: Mapping[str, object]


# ---- errors ----


class PatientNotFound(errors.NotFound):
    # Also the answer for a patient outside the caller's care team: the two must be
    # indistinguishable, or ids could be probed for existence.
    reason = "PATIENT_NOT_FOUND"
    default_message = "patient not found"


class SummaryJobNotFound(errors.NotFound):
    reason = "SUMMARY_JOB_NOT_FOUND"
    default_message = "summary job not found"


class PatientHasNoNotes(errors.FailedPrecondition):
    reason = "PATIENT_HAS_NO_NOTES"
    default_message = "the patient has no notes to summarize"


class ChartTooLarge(errors.FailedPrecondition):
    reason = "CHART_TOO_LARGE"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the patient has more than {limit} notes, too many to summarize")


class RequestIdReused(errors.InvalidArgument):
    reason = "IDEMPOTENCY_KEY_REUSED"

    def __init__(self) -> None:
        description = "was already used for a summary job of another patient"
        super().__init__(
            f"request_id: {description}",
            violations=[errors.FieldViolation("request_id", description)],
        )


class CredentialsRejected(errors.Unauthenticated):
    """The patient-record service no longer accepts the token the request carried."""

    reason = "CREDENTIALS_REJECTED"
    default_message = (
        "the request's credentials expired or were revoked before the patient record "
        "could be read; sign in and submit the request again"
    )


class CredentialsUnreadable(errors.Unauthenticated):
    reason = "CREDENTIALS_UNREADABLE"
    default_message = "the job's stored credentials cannot be read; submit the job again"


class PatientServiceUnavailable(errors.Unavailable):
    reason = "PATIENT_SERVICE_UNAVAILABLE"
    default_message = "the patient record service is unavailable; retry later"


class PatientServiceTimeout(errors.DeadlineExceeded):
    reason = "PATIENT_SERVICE_TIMEOUT"
    default_message = "the patient record service did not answer in time"


class JobTimedOut(errors.DeadlineExceeded):
    reason = "SUMMARY_JOB_TIMEOUT"

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the summary was not written within {seconds:g} s")


class WatchTimeLimit(errors.DeadlineExceeded):
    reason = "WATCH_TIME_LIMIT"
    default_message = "the job did not end while watched; watch it again"


# ---- why a job failed, in words safe to show a client ----

_PERMANENT = (
    errors.InvalidArgument,
    errors.FailedPrecondition,
    errors.Unauthenticated,
    errors.PermissionDenied,
    errors.NotFound,
)


def is_permanent(error: BaseException) -> bool:
    """A failure that another attempt cannot mend (the rest may be transient)."""
    return isinstance(error, _PERMANENT)


def failure_message(error: BaseException) -> str:
    """Domain errors' messages are part of the API: safe. Anything else is not shown."""
    if isinstance(error, errors.DomainError):
        return error.message
    return "internal error"


def attempts_exhausted(attempts: int, last_error: str) -> str:
    return f"gave up after {attempts} attempt{'s' if attempts != 1 else ''}: {last_error}"


LEASE_LAPSED = "the worker running the job stopped responding"
