"""In-memory stand-ins for the patient-record service's I/O: the unit of work, the
group-committed statements of GetPatient and CreateNote, the clock.

The fake repositories subclass the real ones so mypy holds them to the same method
signatures; they never touch the connection the real ones would use.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from devstack import fake_database
from devstack.fake_database import StagedUnitOfWork
from patient_record.domain import (
    AuditEvent,
    Event,
    IdempotencyRecord,
    MrnAlreadyExists,
    Note,
    Patient,
    PatientNotFound,
    SortValue,
)
from patient_record.repository import (
    AuditQuery,
    AuditRepository,
    EventOutbox,
    IdempotencyRepository,
    NoteRepository,
    PatientQuery,
    PatientRepository,
    PatientUnitOfWork,
)
from patient_record.shared_statements import NoteInserts, PatientReads

# Stands in for pg_trgm: close enough to tell a typo from another name.
_MATCH_THRESHOLD = 0.5


@dataclass
class Tables:
    """What the database holds (committed) or a transaction sees."""

    patients: dict[str, Patient] = field(default_factory=dict)
    notes: dict[str, Note] = field(default_factory=dict)
    audit: list[AuditEvent] = field(default_factory=list)
    idempotency: dict[tuple[str, str], IdempotencyRecord] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    def copy(self) -> Tables:
        # Rows are frozen dataclasses: copying the containers isolates a transaction.
        return Tables(
            dict(self.patients),
            dict(self.notes),
            list(self.audit),
            dict(self.idempotency),
            list(self.events),
        )

    def visible(self, patient_id: str, viewer: str | None) -> Patient | None:
        patient = self.patients.get(patient_id)
        if patient is None or (viewer is not None and viewer not in patient.care_team):
            return None
        return patient


def similarity(name: str, search: str) -> float:
    return difflib.SequenceMatcher(None, name.lower(), search.lower()).ratio()


class FakePatients(PatientRepository):
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def add(self, patient: Patient) -> None:
        self._check_mrn(patient)
        self._tables.patients[patient.id] = patient

    async def get(self, patient_id: str, *, viewer: str | None) -> Patient | None:
        return self._tables.visible(patient_id, viewer)

    async def lock(self, patient_id: str) -> None:
        """One event loop, no concurrent transactions: nothing to serialize."""

    async def save(self, patient: Patient) -> None:
        stored = self._tables.patients.get(patient.id)
        if stored is None:
            return
        self._check_mrn(patient)
        # Like the UPDATE: the care team lives in its own table, changed only by members.
        self._tables.patients[patient.id] = replace(patient, care_team=stored.care_team)

    async def delete(self, patient_id: str) -> None:
        self._tables.patients.pop(patient_id, None)
        for note in [n for n in self._tables.notes.values() if n.patient_id == patient_id]:
            del self._tables.notes[note.id]

    async def add_member(self, patient_id: str, user_id: str, at: datetime) -> None:
        patient = self._tables.patients[patient_id]
        if user_id not in patient.care_team:
            team = (*patient.care_team, user_id)
            self._tables.patients[patient_id] = replace(patient, care_team=team)

    async def remove_member(self, patient_id: str, user_id: str) -> None:
        patient = self._tables.patients[patient_id]
        team = tuple(member for member in patient.care_team if member != user_id)
        self._tables.patients[patient_id] = replace(patient, care_team=team)

    async def list_page(self, query: PatientQuery) -> list[tuple[Patient, SortValue]]:
        rows: list[tuple[Patient, SortValue]] = []
        for patient in self._tables.patients.values():
            if query.viewer is not None and query.viewer not in patient.care_team:
                continue
            score = similarity(patient.name, query.search) if query.search else 0.0
            if query.search and score < _MATCH_THRESHOLD:
                continue
            value = score if query.order.key == "relevance" else getattr(patient, query.order.key)
            rows.append((patient, value))
        rows.sort(key=lambda row: (row[1], row[0].id), reverse=query.order.descending)
        if query.after is not None:
            after = query.after
            if query.order.descending:
                rows = [row for row in rows if (row[1], row[0].id) < after]
            else:
                rows = [row for row in rows if (row[1], row[0].id) > after]
        return rows[: query.limit]

    def _check_mrn(self, patient: Patient) -> None:
        others = (p for p in self._tables.patients.values() if p.id != patient.id)
        if patient.mrn is not None and any(other.mrn == patient.mrn for other in others):
            raise MrnAlreadyExists()


class FakeNotes(NoteRepository):
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def add(self, note: Note) -> None:
        if note.patient_id not in self._tables.patients:
            raise PatientNotFound()
        self._tables.notes[note.id] = note

    async def get(self, patient_id: str, note_id: str) -> Note | None:
        note = self._tables.notes.get(note_id)
        return note if note is not None and note.patient_id == patient_id else None

    async def list_page(
        self, patient_id: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[Note]:
        notes = [n for n in self._tables.notes.values() if n.patient_id == patient_id]
        notes.sort(key=lambda note: (note.note_time, note.id), reverse=True)
        if after is not None:
            notes = [note for note in notes if (note.note_time, note.id) < after]
        return notes[:limit]

    async def delete(self, patient_id: str, note_id: str) -> bool:
        if await self.get(patient_id, note_id) is None:
            return False
        del self._tables.notes[note_id]
        return True

    async def delete_all(self, patient_id: str) -> list[str]:
        notes = [n for n in self._tables.notes.values() if n.patient_id == patient_id]
        for note in notes:
            del self._tables.notes[note.id]
        return [note.id for note in sorted(notes, key=lambda n: (n.note_time, n.id))]


class FakeAudit(AuditRepository):
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def record(self, events: Sequence[AuditEvent]) -> None:
        self._tables.audit.extend(events)

    async def list_page(self, query: AuditQuery) -> list[AuditEvent]:
        events = [
            event
            for event in self._tables.audit
            if query.patient_id in (None, event.patient_id)
            and query.actor_id in (None, event.actor_id)
        ]
        events.sort(key=lambda event: (event.occurred_at, event.id), reverse=True)
        if query.after is not None:
            after = query.after
            events = [event for event in events if (event.occurred_at, event.id) < after]
        return events[: query.limit]


class FakeIdempotency(IdempotencyRepository):
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        key = (record.caller_id, record.request_id)
        first = self._tables.idempotency.get(key)
        if first is None:
            self._tables.idempotency[key] = record
        return first


class FakeOutbox(EventOutbox):
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def stage(self, event: Event, *, now: datetime) -> None:
        self._tables.events.append(event)


class FakeDatabase(fake_database.FakeDatabase[Tables]):
    def __init__(self) -> None:
        super().__init__(Tables())

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)


class FakeUnitOfWork(StagedUnitOfWork[Tables], PatientUnitOfWork):
    """Stages changes on a private copy; `commit` publishes it, leaving discards it."""

    def bind_tables(self, tables: Tables) -> None:
        self.patients = FakePatients(tables)
        self.notes = FakeNotes(tables)
        self.audit = FakeAudit(tables)
        self.idempotency = FakeIdempotency(tables)
        self.events = FakeOutbox(tables)


class FakePatientReads(PatientReads):
    """GetPatient's statement on the committed tables: each read is its own commit."""

    def __init__(self, database: FakeDatabase) -> None:
        self._database = database

    async def read_patient(self, event: AuditEvent, *, viewer: str | None) -> Patient | None:
        tables = self._database.committed.copy()
        patient = tables.visible(event.patient_id, viewer)
        if patient is not None:
            tables.audit.append(event)
            self._database.committed = tables
            self._database.commits += 1
        return patient

    async def close(self) -> None:
        return None


class FakeNoteInserts(NoteInserts):
    """CreateNote's statement on the committed tables: the note, its audit row and its
    event in one commit, or nothing."""

    def __init__(self, database: FakeDatabase) -> None:
        self._database = database

    async def add(self, note: Note, viewer: str | None, audit: AuditEvent, event: Event) -> bool:
        tables = self._database.committed.copy()
        if tables.visible(note.patient_id, viewer) is None:
            return False
        tables.notes[note.id] = note
        tables.audit.append(audit)
        tables.events.append(event)
        self._database.committed = tables
        self._database.commits += 1
        return True

    async def close(self) -> None:
        return None


class FixedClock:
    """Time stands still until a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta
