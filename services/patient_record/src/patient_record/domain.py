"""Patients, care teams, notes and the audit trail as the business sees them — no I/O."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

from medstation_platform import errors

SEXES = frozenset({"female", "male", "other", "unknown"})
MAX_NAME_LENGTH = 200
MAX_MRN_LENGTH = 64
MAX_NOTE_LENGTH = 100_000
# Clocks drift and notes are written across time zones; further ahead is a typo.
NOTE_TIME_MAX_AHEAD = timedelta(days=1)
_DATE_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

JsonScalar = str | int | float | bool | None
Payload = dict[str, JsonScalar | list[str]]


@dataclass(frozen=True)
class Patient:
    id: str
    name: str
    date_of_birth: date
    sex: str
    mrn: str | None
    care_team: tuple[str, ...]
    created_at: datetime
    updated_at: datetime

    def changed(self, now: datetime, **fields: Any) -> Patient:
        return replace(self, updated_at=now, **fields)


@dataclass(frozen=True)
class Note:
    id: str
    patient_id: str
    author_id: str
    content: str
    note_time: datetime
    created_at: datetime


@dataclass(frozen=True)
class AuditEvent:
    id: str
    actor_id: str
    action: str
    patient_id: str
    note_id: str | None
    occurred_at: datetime
    trace_id: str


class Action:
    """Audit actions, `<resource>.<verb>` as the AuditEvent proto documents them."""

    PATIENT_CREATE = "patient.create"
    PATIENT_READ = "patient.read"
    PATIENT_LIST = "patient.list"
    PATIENT_UPDATE = "patient.update"
    PATIENT_DELETE = "patient.delete"
    CARE_TEAM_ADD = "care_team.add"
    CARE_TEAM_REMOVE = "care_team.remove"
    NOTE_CREATE = "note.create"
    NOTE_READ = "note.read"
    NOTE_LIST = "note.list"
    NOTE_DELETE = "note.delete"


@dataclass(frozen=True)
class IdempotencyRecord:
    """What the first request with a caller's request_id created, and what it asked for."""

    caller_id: str
    request_id: str
    request_hash: bytes
    resource_id: str
    created_at: datetime


# ---- events: ids and facts only, never PHI (no names, birth dates, MRNs or note text) ----


@dataclass(frozen=True)
class Event:
    event_type: str
    patient_id: str  # the partition key: consumers see one patient's events in order
    payload: Payload


def patient_updated(patient: Patient, changed_fields: list[str]) -> Event:
    return Event(
        "patient.updated",
        patient.id,
        {
            "patient_id": patient.id,
            "changed_fields": sorted(changed_fields),
            # Membership is not PHI, and consumers that gate access on it need it whole.
            "care_team": list(patient.care_team),
            "updated_at": patient.updated_at.isoformat(),
        },
    )


def patient_deleted(patient_id: str, note_count: int, at: datetime) -> Event:
    return Event(
        "patient.deleted",
        patient_id,
        {"patient_id": patient_id, "note_count": note_count, "deleted_at": at.isoformat()},
    )


def note_created(note: Note) -> Event:
    return Event(
        "note.created",
        note.patient_id,
        {
            "patient_id": note.patient_id,
            "note_id": note.id,
            "author_id": note.author_id,
            "note_time": note.note_time.isoformat(),
            "created_at": note.created_at.isoformat(),
        },
    )


def note_deleted(patient_id: str, note_id: str, at: datetime) -> Event:
    return Event(
        "note.deleted",
        patient_id,
        {"patient_id": patient_id, "note_id": note_id, "deleted_at": at.isoformat()},
    )


# ---- listing order ----

SortKey = Literal["name", "date_of_birth", "created_at", "relevance"]
SortValue = str | date | datetime | float
_ORDERABLE: tuple[SortKey, ...] = ("name", "date_of_birth", "created_at")


@dataclass(frozen=True)
class PatientOrder:
    """How a patient list is sorted; `id` in the same direction breaks ties."""

    key: SortKey
    descending: bool

    @property
    def spelling(self) -> str:
        return f"{self.key} desc" if self.descending else self.key

    def to_json(self, value: SortValue) -> JsonScalar:
        if isinstance(value, date):  # datetime is a date too
            return value.isoformat()
        return value

    def from_json(self, raw: JsonScalar) -> SortValue:
        """The sort value a page token carried; ValueError when it has the wrong shape."""
        if self.key == "relevance":
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise ValueError("relevance must be a number")
            return float(raw)
        if not isinstance(raw, str):
            raise ValueError(f"{self.key} must be a string")
        if self.key == "date_of_birth":
            return date.fromisoformat(raw)
        if self.key == "created_at":
            return datetime.fromisoformat(raw)
        return raw


def parse_order_by(raw: str, *, searching: bool) -> PatientOrder:
    """`name`, `date_of_birth` or `created_at`, optionally ` desc`; empty means `name`, or
    best match first when searching."""
    if not raw:
        return PatientOrder("relevance", True) if searching else PatientOrder("name", False)
    key, _, direction = raw.partition(" ")
    if key not in _ORDERABLE or direction not in ("", "desc"):
        raise errors.InvalidArgument.for_field(
            "order_by", "must be name, date_of_birth or created_at, optionally followed by ' desc'"
        )
    return PatientOrder(key, direction == "desc")


# ---- validation beyond the proto rules; each violation names its field ----


def _control_characters(text: str, *, allowed: str = "") -> bool:
    # PostgreSQL text cannot hold NUL at all, and no other control character belongs in
    # a name or a record number either.
    return any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in text)


def clean_name(raw: str, *, field: str = "name") -> str:
    name = " ".join(raw.split())
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise errors.InvalidArgument.for_field(
            field, f"must be 1 to {MAX_NAME_LENGTH} characters, not blank"
        )
    if _control_characters(name):
        raise errors.InvalidArgument.for_field(field, "must not contain control characters")
    return name


def clean_search(raw: str) -> str:
    """The name to search for, spaces normalized; empty means no search."""
    search = " ".join(raw.split())
    if _control_characters(search):
        raise errors.InvalidArgument.for_field("query", "must not contain control characters")
    return search


def latest_date_on_earth(now: datetime) -> date:
    """Today where the calendar is furthest ahead (UTC+14): a baby born this morning in
    Kiribati must not be "born in the future" by the UTC date."""
    return (now + timedelta(hours=14)).date()


def parse_date_of_birth(raw: str, *, today: date, field: str = "date_of_birth") -> date:
    # The shape first: fromisoformat alone would also take 20230228 and week dates.
    try:
        if not _DATE_SHAPE.fullmatch(raw):
            raise ValueError(raw)
        born = date.fromisoformat(raw)
    except ValueError:
        raise errors.InvalidArgument.for_field(field, "must be a real date as YYYY-MM-DD") from None
    if born > today:
        raise errors.InvalidArgument.for_field(field, "must not be in the future")
    return born


def check_sex(raw: str, *, field: str = "sex") -> str:
    if raw not in SEXES:
        raise errors.InvalidArgument.for_field(field, "must be female, male, other or unknown")
    return raw


def clean_mrn(raw: str, *, field: str = "mrn") -> str | None:
    """Empty means none; surrounding spaces are never part of a record number."""
    mrn = raw.strip()
    if _control_characters(mrn):
        raise errors.InvalidArgument.for_field(field, "must not contain control characters")
    if len(mrn) > MAX_MRN_LENGTH:
        raise errors.InvalidArgument.for_field(
            field, f"must be at most {MAX_MRN_LENGTH} characters"
        )
    return mrn or None


def check_note_content(raw: str) -> str:
    if not raw.strip() or len(raw) > MAX_NOTE_LENGTH:
        raise errors.InvalidArgument.for_field(
            "content", f"must be 1 to {MAX_NOTE_LENGTH} characters, not blank"
        )
    if _control_characters(raw, allowed="\t\n\r\f"):
        raise errors.InvalidArgument.for_field(
            "content", "must not contain control characters other than line breaks and tabs"
        )
    return raw


def resolve_note_time(given: datetime | None, *, now: datetime) -> datetime:
    if given is None:
        return now
    if given > now + NOTE_TIME_MAX_AHEAD:
        raise errors.InvalidArgument.for_field(
            "note_time", "must not be more than a day in the future"
        )
    return given


# ---- errors ----


class PatientNotFound(errors.NotFound):
    # Also the answer for a patient outside the caller's care team: the two must be
    # indistinguishable, or ids could be probed for existence.
    reason = "PATIENT_NOT_FOUND"
    default_message = "patient not found"


class NoteNotFound(errors.NotFound):
    reason = "NOTE_NOT_FOUND"
    default_message = "note not found"


class MrnAlreadyExists(errors.AlreadyExists):
    reason = "MRN_ALREADY_EXISTS"
    default_message = "another patient has this medical record number"

    def __init__(self, field: str = "mrn") -> None:
        super().__init__(
            violations=[errors.FieldViolation(field, "is already used by another patient")]
        )


class LastCareTeamMember(errors.FailedPrecondition):
    reason = "LAST_CARE_TEAM_MEMBER"
    default_message = "a patient's last care-team member cannot be removed"


class AdminRequired(errors.PermissionDenied):
    reason = "ADMIN_REQUIRED"
    default_message = "this operation requires the admin role"


class IdempotencyKeyReused(errors.FailedPrecondition):
    reason = "IDEMPOTENCY_KEY_REUSED"
    default_message = "this request_id was already used for a different request"

    def __init__(self) -> None:
        super().__init__(
            violations=[errors.FieldViolation("request_id", "was used for a different request")]
        )
