"""The statements of the two busiest calls, each shared by the concurrent requests that
need it (a group commit, medstation_platform.group_commit): GetPatient's, which checks
access, records the read and returns the record, and CreateNote's, which checks access
and inserts the note with its audit row and outbox event. One round trip and one commit
per batch, however many requests it serves; both run on the statement pool.

The statements are built by module functions so that tests can EXPLAIN exactly what runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry
from sqlalchemy import (
    CTE,
    ColumnElement,
    FromClause,
    Select,
    Text,
    bindparam,
    case,
    cast,
    column,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSON, JSONB
from sqlalchemy.types import TypeEngine

from medstation_platform.group_commit import (
    DEFAULT_MAX_BATCH,
    BatchFunction,
    GroupCommit,
    ItemT,
    ResultT,
)
from medstation_platform.hot_sql import HotQuery
from medstation_platform.outbox import OutboxEvent, OutboxRow, outbox_row
from medstation_platform.statement_pool import StatementPool
from medstation_platform.versioned_cache import Versioned, VersionedCache
from patient_record import tables
from patient_record.domain import AuditEvent, Event, Note, Patient
from patient_record.repository import (
    AUDIT_COLUMNS,
    NOTE_PATIENT_FK,
    TIMESTAMP,
    UUID,
    audit_row,
    care_team_of,
    patient_from_row,
)

_patients = tables.patients
_team = tables.care_team
_notes = tables.notes
_audit = tables.audit_events

# The version of the patient each read's process holds in its cache (NULL: none).
_READ_PARAMETERS: dict[str, TypeEngine[Any]] = {
    **AUDIT_COLUMNS,
    "viewer": UUID,
    "cached_version": Text(),
}
# The batch travels as one JSON array of objects: psycopg dumps one string, where one
# array per column costs a regular-expression check of every element.
_READ_ROWS = (
    func.json_to_recordset(bindparam("reads", type_=JSON))
    .table_valued(*(column(name, kind) for name, kind in _READ_PARAMETERS.items()))
    .render_derived(with_types=True)
)
_READS = select(*_READ_ROWS.c).cte("reads")
# Written into the SQL, not bound: HotQuery's parameters are the batch alone.
_ONE: ColumnElement[int] = literal_column("1")


# PostgreSQL guesses 100 rows for any json_to_recordset, and on tables of a few thousand
# rows that guess makes an EXISTS in an OR cheaper to answer by hashing the whole
# care_team table, and a join cheaper as a sequential scan of patients, for every batch
# (0.3 ms of a 0.5 ms statement at 1 000 patients). A LATERAL subquery with a LIMIT is
# never flattened: it runs once per batch row, where one index probe is always cheapest.
def _access_probes(rows: CTE) -> tuple[FromClause, ColumnElement[bool]]:
    """`rows` (each with a `patient_id` and a `viewer`, None for an admin) joined with
    what decides whether its viewer may see its patient, and that decision: a member of
    the care team, or an admin and the patient exists."""
    member = (
        select(true().label("allowed"))
        .where(_team.c.patient_id == rows.c.patient_id, _team.c.user_id == rows.c.viewer)
        .limit(_ONE)
        .lateral(f"{rows.name}_member")
    )
    admin = (
        select(true().label("allowed"))
        .where(rows.c.viewer.is_(None), _patients.c.id == rows.c.patient_id)
        .limit(_ONE)
        .lateral(f"{rows.name}_admin")
    )
    probes = rows.outerjoin(member, true()).outerjoin(admin, true())
    return probes, or_(member.c.allowed, admin.c.allowed)


_READ_PROBES, _READ_ALLOWED = _access_probes(_READS)
_RECORDED_READS = (
    insert(_audit)
    .from_select(
        list(AUDIT_COLUMNS),
        select(*(_READS.c[name] for name in AUDIT_COLUMNS))
        .select_from(_READ_PROBES)
        .where(_READ_ALLOWED),
    )
    .returning(_audit.c.id)
    .cte("recorded")
)
# A patient row's version: PostgreSQL gives every UPDATE of a row a new xmin (a care-team
# change updates the patient's row too), and equal xmins mean the very same row version.
_ROW_VERSION = cast(literal_column("patients.xmin"), Text)
_STALE = _ROW_VERSION.is_distinct_from(_READS.c.cached_version)
# Each allowed read's patient, by one index probe (see _access_probes), with its version;
# the record (its care team the costly part) only where the reader's cached version is
# not current: a cache hit's row is its ids and version, nothing to parse.
_READ_PATIENT = (
    select(
        _ROW_VERSION.label("version"),
        *(case((_STALE, column), else_=null()).label(column.name) for column in _patients.c),
        case((_STALE, care_team_of(_patients.c.id)), else_=null()).label("care_team"),
    )
    .where(_patients.c.id == _READS.c.patient_id)
    .limit(_ONE)
    .lateral("patient")
)


def read_patients_statement() -> Select[Any]:
    """GetPatient's statement: the batch (one JSON parameter, `reads`) in, one row per
    read its viewer was allowed out."""
    # The read's id as text, as the batch sent it: no uuid.UUID made and printed per row.
    read_id = cast(_RECORDED_READS.c.id, Text).label("read_id")
    return select(read_id, *_READ_PATIENT.c).select_from(
        _RECORDED_READS.join(_READS, _READS.c.id == _RECORDED_READS.c.id).join(
            _READ_PATIENT, true()
        )
    )


_READ_PATIENTS = HotQuery(read_patients_statement())
# A batch of new notes, each inserted with its audit row and its outbox event only if
# its author may see the patient (a NULL viewer: an admin, any patient that exists). One
# statement: each note, its audit row and its event commit together or not at all.
_NEW_NOTE_PARAMETERS: dict[str, TypeEngine[Any]] = {
    "id": UUID,
    "patient_id": UUID,
    "author_id": UUID,
    "content": Text(),
    "note_time": TIMESTAMP,
    "created_at": TIMESTAMP,
    "viewer": UUID,
    "audit_id": UUID,
    "action": Text(),
    "trace_id": Text(),
    "occurred_at": TIMESTAMP,
    "event_id": UUID,
    "event_type": Text(),
    "payload": JSONB(),
    "trace_context": JSONB(),
}
_NEW_NOTE_ROWS = (
    func.json_to_recordset(bindparam("notes", type_=JSON))
    .table_valued(*(column(name, kind) for name, kind in _NEW_NOTE_PARAMETERS.items()))
    .render_derived(with_types=True)
)
_NEW_NOTES = select(_NEW_NOTE_ROWS).cte("new_notes")
_NOTE_PROBES, _NOTE_ALLOWED = _access_probes(_NEW_NOTES)
_ALLOWED_NOTES = select(*_NEW_NOTES.c).select_from(_NOTE_PROBES).where(_NOTE_ALLOWED).cte("allowed")
_NOTE_COLUMNS = ("id", "patient_id", "author_id", "content", "note_time", "created_at")
_INSERTED_NOTES = (
    insert(_notes)
    .from_select(list(_NOTE_COLUMNS), select(*(_ALLOWED_NOTES.c[c] for c in _NOTE_COLUMNS)))
    .returning(_notes.c.id)
    .cte("inserted")
)
_NOTE_AUDIT_ROWS = (
    insert(_audit)
    .from_select(
        list(AUDIT_COLUMNS),
        select(
            _ALLOWED_NOTES.c.audit_id,
            _ALLOWED_NOTES.c.author_id,
            _ALLOWED_NOTES.c.action,
            _ALLOWED_NOTES.c.patient_id,
            _ALLOWED_NOTES.c.id,
            _ALLOWED_NOTES.c.occurred_at,
            _ALLOWED_NOTES.c.trace_id,
        ),
    )
    .cte("audited")
)
_NOTE_EVENTS = (
    insert(tables.outbox)
    .from_select(
        ["event_id", "event_type", "partition_key", "payload", "trace_context", "created_at"],
        select(
            _ALLOWED_NOTES.c.event_id,
            _ALLOWED_NOTES.c.event_type,
            cast(_ALLOWED_NOTES.c.patient_id, Text),
            _ALLOWED_NOTES.c.payload,
            _ALLOWED_NOTES.c.trace_context,
            _ALLOWED_NOTES.c.created_at,
        ),
    )
    .cte("staged")
)


def insert_notes_statement() -> Select[Any]:
    """CreateNote's statement: the batch (one JSON parameter, `notes`) in, the ids of the
    notes inserted out."""
    return select(_INSERTED_NOTES.c.id).add_cte(_NOTE_AUDIT_ROWS).add_cte(_NOTE_EVENTS)


_INSERT_NOTES = HotQuery(insert_notes_statement())


def _group_commit(
    write: BatchFunction[ItemT, ResultT],
    query: HotQuery,
    *,
    name: str,
    registry: CollectorRegistry | None,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> GroupCommit[ItemT, ResultT]:
    """Requests sharing `query` (an INSERT, for all its WITH), each sampled one with a span
    that shows the statement."""
    return GroupCommit(
        write,
        name=name,
        registry=registry,
        max_batch=max_batch,
        span_name="INSERT medstation_patient",
        span_attributes=query.span_attributes("medstation_patient"),
    )


@dataclass(frozen=True)
class VisibleRead:
    """A read to record if `viewer` may see the patient (None: an admin, who sees all),
    with the patient this process held when the read began (None: not cached)."""

    event: AuditEvent
    viewer: str | None
    cached: Versioned[Patient] | None


def _read_row(read: VisibleRead) -> dict[str, str | None]:
    return {
        **audit_row(read.event),
        "viewer": read.viewer,
        "cached_version": None if read.cached is None else read.cached.version,
    }


class PatientReads:
    """Reads of one patient, each recorded by the statement that reads it.

    Access is decided by PostgreSQL in the statement that records the read and returns
    the record, so no read is allowed without its audit row, committed before the caller
    sees anything. Concurrent reads share that statement and its commit (a group
    commit): one round trip per batch, however many requests it serves. Records are
    cached per process, each checked against the row version that same statement
    returns: a hit only saves building the record, and is never stale.
    """

    def __init__(
        self,
        statements: StatementPool,
        registry: CollectorRegistry | None = None,
        *,
        cache_entries: int,
    ) -> None:
        self._statements = statements
        self._cache: VersionedCache[str, Patient] = VersionedCache(
            name="patient", max_entries=cache_entries, registry=registry
        )
        self._reads: GroupCommit[VisibleRead, Patient | None] = _group_commit(
            self._read_batch, _READ_PATIENTS, name="patient_reads", registry=registry
        )

    async def read_patient(self, event: AuditEvent, *, viewer: str | None) -> Patient | None:
        """The patient, its read recorded; None if it does not exist or `viewer` may not
        see it (nothing is recorded then)."""
        cached = self._cache.held(event.patient_id)
        return await self._reads.submit(VisibleRead(event, viewer, cached))

    async def close(self) -> None:
        await self._reads.close()

    async def _read_batch(self, reads: Sequence[VisibleRead]) -> list[Patient | None]:
        document = json.dumps([_read_row(read) for read in reads], separators=(",", ":"))
        rows = await self._statements.fetch_all(_READ_PATIENTS, {"reads": document}, traced=False)
        found = {row.read_id: row for row in rows}
        return [self._patient(read, found.get(read.event.id)) for read in reads]

    def _patient(self, read: VisibleRead, row: Any | None) -> Patient | None:
        if row is None:
            return None
        if row.care_team is None and read.cached is not None:
            # The statement sends no care team when the version the read held is current.
            self._cache.served()
            return read.cached.value
        patient = patient_from_row(row)
        self._cache.keep(patient.id, row.version, patient)
        return patient


@dataclass(frozen=True)
class NewNote:
    """A note to insert if `viewer` may see its patient (None: an admin), with the audit
    row and the outbox row that record its creation."""

    note: Note
    viewer: str | None
    audit: AuditEvent
    event: OutboxRow


def _new_note_row(new: NewNote) -> dict[str, object]:
    note, audit, event = new.note, new.audit, new.event
    return {
        "id": note.id,
        "patient_id": note.patient_id,
        "author_id": note.author_id,
        "content": note.content,
        "note_time": note.note_time.isoformat(),
        "created_at": note.created_at.isoformat(),
        "viewer": new.viewer,
        "audit_id": audit.id,
        "action": audit.action,
        "trace_id": audit.trace_id,
        "occurred_at": audit.occurred_at.isoformat(),
        "event_id": event.event_id,
        "event_type": event.event_type,
        "payload": event.payload,
        "trace_context": event.trace_context,
    }


class NoteInserts:
    """New notes, each with its audit row and outbox event, many requests' in one
    statement (a group commit): one round trip and one commit per batch."""

    # Notes run up to 100 000 characters: a batch stays a few megabytes at most.
    MAX_BATCH = 32

    def __init__(
        self, statements: StatementPool, registry: CollectorRegistry | None = None
    ) -> None:
        self._statements = statements
        self._inserts: GroupCommit[NewNote, bool] = _group_commit(
            self._insert_batch,
            _INSERT_NOTES,
            name="note_inserts",
            registry=registry,
            max_batch=self.MAX_BATCH,
        )

    async def add(self, note: Note, viewer: str | None, audit: AuditEvent, event: Event) -> bool:
        """Whether the note was inserted (with its audit row and event); False when its
        patient does not exist or the author may not see it (nothing is written then)."""
        # The outbox row takes the trace context of this request, so it is made here.
        outbox_event = OutboxEvent(event.event_type, event.patient_id, event.payload)
        row = outbox_row(outbox_event, now=note.created_at)
        return await self._inserts.submit(NewNote(note, viewer, audit, row))

    async def close(self) -> None:
        await self._inserts.close()

    async def _insert_batch(self, batch: Sequence[NewNote]) -> list[bool]:
        document = json.dumps([_new_note_row(new) for new in batch], separators=(",", ":"))
        try:
            rows = await self._statements.fetch_all(
                _INSERT_NOTES, {"notes": document}, traced=False
            )
        except psycopg.errors.ForeignKeyViolation as error:
            # A patient deleted since the statement's snapshot. In a batch of several,
            # the group commit then writes each note alone, and this is that note's.
            if len(batch) == 1 and error.diag.constraint_name == NOTE_PATIENT_FK:
                return [False]
            raise
        inserted = {str(row.id) for row in rows}
        return [new.note.id in inserted for new in batch]
