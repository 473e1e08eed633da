"""Every SQL statement of the patient-record service. Repositories stage; the unit of work
commits. The statements are built by module functions so that tests can EXPLAIN exactly
what the repositories run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry
from sqlalchemy import (
    REAL,
    BindParameter,
    ColumnElement,
    Date,
    DateTime,
    Insert,
    Select,
    Text,
    Uuid,
    and_,
    bindparam,
    case,
    cast,
    column,
    delete,
    exc,
    exists,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSON, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeEngine

from medstation_platform.db import UnitOfWork
from medstation_platform.group_commit import (
    DEFAULT_MAX_BATCH,
    BatchFunction,
    GroupCommit,
    ItemT,
    ResultT,
)
from medstation_platform.hot_sql import HotQuery, execute, fetch_first
from medstation_platform.outbox import OutboxEvent, OutboxRow, outbox_row, stage_event
from medstation_platform.statement_pool import StatementPool
from medstation_platform.versioned_cache import Versioned, VersionedCache
from patient_record import tables
from patient_record.domain import (
    AuditEvent,
    Event,
    IdempotencyRecord,
    MrnAlreadyExists,
    Note,
    Patient,
    PatientNotFound,
    PatientOrder,
    SortValue,
)

_patients = tables.patients
_team = tables.care_team
_notes = tables.notes
_audit = tables.audit_events
_UUID = Uuid(as_uuid=False)
_TIMESTAMP = DateTime(timezone=True)
_MRN_UNIQUE = "patients_mrn_key"
_NOTE_PATIENT_FK = "notes_patient_id_fkey"

Cursor = tuple[SortValue, str]  # the last row's sort value and id


@dataclass(frozen=True)
class PatientQuery:
    """One page of ListPatients, as the repository needs it."""

    viewer: str | None  # None: every patient (admins); else that user's care-team patients
    order: PatientOrder
    search: str  # "" matches everyone
    after: Cursor | None
    limit: int


@dataclass(frozen=True)
class AuditQuery:
    patient_id: str | None
    actor_id: str | None
    after: tuple[datetime, str] | None
    limit: int


# ---- statements ----


def _care_team_of(patient_id: ColumnElement[Any]) -> ColumnElement[Any]:
    members = (
        select(_team.c.user_id)
        .where(_team.c.patient_id == patient_id)
        .order_by(_team.c.added_at, _team.c.user_id)
        .scalar_subquery()
        # Only the patient is outer: a list query joins care_team for the viewer too.
        .correlate(_patients)
    )
    return func.array(members)  # ARRAY(subquery): members in the order they joined


def _patient_columns() -> list[ColumnElement[Any]]:
    return [*_patients.c, _care_team_of(_patients.c.id).label("care_team")]


def _is_member(
    patient_id: ColumnElement[Any] | str, user_id: ColumnElement[Any] | str
) -> ColumnElement[bool]:
    return exists().where(_team.c.patient_id == patient_id, _team.c.user_id == user_id)


def patient_statement(
    patient_id: str | BindParameter[Any], viewer: str | BindParameter[Any] | None
) -> Select[Any]:
    """The patient with its care team, if `viewer` may see it (None: anyone may)."""
    statement = select(*_patient_columns()).where(_patients.c.id == patient_id)
    if viewer is not None:
        statement = statement.where(_is_member(_patients.c.id, viewer))
    return statement


def _sort_expression(query: PatientQuery) -> ColumnElement[Any]:
    if query.order.key == "relevance":
        return func.strict_word_similarity(query.search, _patients.c.name, type_=REAL)
    return _patients.c[query.order.key]


def _sort_bound(order: PatientOrder, value: SortValue) -> ColumnElement[Any]:
    if order.key == "relevance":
        # The similarity is a float4: the bound must be one too, or the float8 the token
        # carried would compare unequal to the very row it came from.
        return cast(literal(value), REAL)
    if order.key == "date_of_birth":
        return literal(value, Date)
    if order.key == "created_at":
        return literal(value, _TIMESTAMP)
    return literal(value, Text)


def _name_matches(search: str) -> ColumnElement[bool]:
    # pg_trgm's strict word similarity (at least 0.5 by default): the query is similar
    # to a run of whole words of the name, so "Jonathan Smithrs" finds "Johnathan
    # Smithers" and "smith" finds "John Smith". One operator, not `%` OR `<%`: the
    # planner prices an OR of two trigram index scans above a sequential scan.
    return literal(search, Text).op("<<%", is_comparison=True)(_patients.c.name)


def patient_page_statement(query: PatientQuery) -> Select[Any]:
    """`query.limit` patients after the cursor, keyset-paginated on (sort value, id)."""
    sort = _sort_expression(query)
    statement = select(*_patient_columns(), sort.label("sort_value"))
    if query.viewer is not None:
        statement = statement.join(
            _team, and_(_team.c.patient_id == _patients.c.id, _team.c.user_id == query.viewer)
        )
    if query.search:
        statement = statement.where(_name_matches(query.search))
    keys = tuple_(sort, _patients.c.id)
    if query.after is not None:
        value, last_id = query.after
        bound = tuple_(_sort_bound(query.order, value), literal(last_id, _UUID))
        statement = statement.where(keys < bound if query.order.descending else keys > bound)
    if query.order.descending:
        statement = statement.order_by(sort.desc(), _patients.c.id.desc())
    else:
        statement = statement.order_by(sort, _patients.c.id)
    return statement.limit(query.limit)


def note_page_statement(
    patient_id: str, after: tuple[datetime, str] | None, limit: int
) -> Select[Any]:
    """A patient's notes, newest note_time first."""
    statement = select(_notes).where(_notes.c.patient_id == patient_id)
    if after is not None:
        note_time, note_id = after
        bound = tuple_(literal(note_time, _TIMESTAMP), literal(note_id, _UUID))
        statement = statement.where(tuple_(_notes.c.note_time, _notes.c.id) < bound)
    order = (_notes.c.note_time.desc(), _notes.c.id.desc())
    return statement.order_by(*order).limit(limit)


def audit_page_statement(query: AuditQuery) -> Select[Any]:
    """Audit events, newest first, optionally for one patient and/or one actor."""
    statement = select(_audit)
    if query.patient_id is not None:
        statement = statement.where(_audit.c.patient_id == query.patient_id)
    if query.actor_id is not None:
        statement = statement.where(_audit.c.actor_id == query.actor_id)
    if query.after is not None:
        occurred_at, event_id = query.after
        bound = tuple_(literal(occurred_at, _TIMESTAMP), literal(event_id, _UUID))
        statement = statement.where(tuple_(_audit.c.occurred_at, _audit.c.id) < bound)
    order = (_audit.c.occurred_at.desc(), _audit.c.id.desc())
    return statement.order_by(*order).limit(query.limit)


def visible_read_statement(event: AuditEvent, viewer: str | None) -> Insert:
    """Records `event` only if `viewer` may see its patient: the access check and the
    audit row are one statement, so no read is ever allowed without being recorded."""
    values: dict[str, ColumnElement[Any]] = {
        "id": literal(event.id, _UUID),
        "actor_id": literal(event.actor_id, _UUID),
        "action": literal(event.action, Text),
        "patient_id": literal(event.patient_id, _UUID),
        "note_id": literal(event.note_id, _UUID),
        "occurred_at": literal(event.occurred_at, _TIMESTAMP),
        "trace_id": literal(event.trace_id, Text),
    }
    return _visible_read(values, None if viewer is None else literal(viewer, _UUID))


def _visible_read(
    values: dict[str, ColumnElement[Any]], viewer: ColumnElement[Any] | None
) -> Insert:
    patient_id = values["patient_id"]
    allowed: ColumnElement[bool] = (
        exists().where(_patients.c.id == patient_id)
        if viewer is None
        else _is_member(patient_id, viewer)
    )
    row = select(*values.values()).where(allowed)
    return insert(_audit).from_select(list(values), row).returning(_audit.c.id)


# GetPatient's statements, every read of a patient runs them: compiled once (hot_sql).
_AUDIT_PARAMETERS: dict[str, TypeEngine[Any]] = {
    "id": _UUID,
    "actor_id": _UUID,
    "action": Text(),
    "patient_id": _UUID,
    "note_id": _UUID,
    "occurred_at": _TIMESTAMP,
    "trace_id": Text(),
}
_HOT_VALUES: dict[str, ColumnElement[Any]] = {
    name: bindparam(name, type_=kind) for name, kind in _AUDIT_PARAMETERS.items()
}
_VISIBLE_READ_BY_MEMBER = HotQuery(_visible_read(_HOT_VALUES, bindparam("viewer", type_=_UUID)))
_VISIBLE_READ_BY_ADMIN = HotQuery(_visible_read(_HOT_VALUES, None))
_PATIENT_BY_ID = HotQuery(patient_statement(bindparam("patient_id", type_=_UUID), None))
# Every call on a patient or its notes first checks the caller is on its care team.
_PATIENT_FOR_MEMBER = HotQuery(
    patient_statement(bindparam("patient_id", type_=_UUID), bindparam("viewer", type_=_UUID))
)
_INSERT_AUDIT = HotQuery(insert(_audit).values(_HOT_VALUES))
# Many audit rows (a page of ListPatients) in one statement whose text never changes, so
# it is prepared once: one array per column, unnested into rows. A multi-row VALUES list
# is a new statement for each row count, compiled by SQLAlchemy every time: most of a
# 50-patient page's CPU.
_AUDIT_ROWS = (
    func.unnest(*[bindparam(name, type_=ARRAY(kind)) for name, kind in _AUDIT_PARAMETERS.items()])
    .table_valued(*_AUDIT_PARAMETERS)
    .render_derived()
)
_INSERT_AUDIT_ROWS = HotQuery(
    insert(_audit).from_select(list(_AUDIT_PARAMETERS), select(*_AUDIT_ROWS.c))
)
# A batch of reads, each recorded only if its viewer may see the patient (a NULL viewer,
# an admin, sees every patient that exists): many requests' access checks and audit
# rows in one prepared statement, which returns the ids of the rows it recorded.
# The version of the patient each read's process holds in its cache (NULL: none).
_READ_PARAMETERS: dict[str, TypeEngine[Any]] = {
    **_AUDIT_PARAMETERS,
    "viewer": _UUID,
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
_READ_ALLOWED = or_(
    and_(_READS.c.viewer.is_(None), exists().where(_patients.c.id == _READS.c.patient_id)),
    _is_member(_READS.c.patient_id, _READS.c.viewer),
)
_RECORDED_READS = (
    insert(_audit)
    .from_select(
        list(_AUDIT_PARAMETERS),
        select(*(_READS.c[name] for name in _AUDIT_PARAMETERS)).where(_READ_ALLOWED),
    )
    .returning(_audit.c.id)
    .cte("recorded")
)
# A patient row's version: PostgreSQL gives every UPDATE of a row a new xmin (a care-team
# change updates the patient's row too), and equal xmins mean the very same row version.
_ROW_VERSION = cast(literal_column("patients.xmin"), Text)
# ... and the patients those reads were allowed to see, with their versions; the care
# team (the costly part) only where the reader's cached version is not the current one.
_READ_PATIENTS = HotQuery(
    select(
        _RECORDED_READS.c.id.label("read_id"),
        _ROW_VERSION.label("version"),
        *_patients.c,
        case(
            (_ROW_VERSION.is_distinct_from(_READS.c.cached_version), _care_team_of(_patients.c.id)),
            else_=null(),
        ).label("care_team"),
    ).select_from(
        _RECORDED_READS.join(_READS, _READS.c.id == _RECORDED_READS.c.id).join(
            _patients, _patients.c.id == _READS.c.patient_id
        )
    )
)
# A batch of new notes, each inserted with its audit row and its outbox event only if
# its author may see the patient (a NULL viewer: an admin, any patient that exists). One
# statement: each note, its audit row and its event commit together or not at all.
_NEW_NOTE_PARAMETERS: dict[str, TypeEngine[Any]] = {
    "id": _UUID,
    "patient_id": _UUID,
    "author_id": _UUID,
    "content": Text(),
    "note_time": _TIMESTAMP,
    "created_at": _TIMESTAMP,
    "viewer": _UUID,
    "audit_id": _UUID,
    "action": Text(),
    "trace_id": Text(),
    "occurred_at": _TIMESTAMP,
    "event_id": _UUID,
    "event_type": Text(),
    "payload": JSONB(),
    "trace_context": JSONB(),
}
_NEW_NOTE_ROWS = (
    func.json_to_recordset(bindparam("notes", type_=JSON))
    .table_valued(*(column(name, kind) for name, kind in _NEW_NOTE_PARAMETERS.items()))
    .render_derived(with_types=True)
)
_ALLOWED_NOTES = (
    select(_NEW_NOTE_ROWS)
    .where(
        or_(
            and_(
                _NEW_NOTE_ROWS.c.viewer.is_(None),
                exists().where(_patients.c.id == _NEW_NOTE_ROWS.c.patient_id),
            ),
            _is_member(_NEW_NOTE_ROWS.c.patient_id, _NEW_NOTE_ROWS.c.viewer),
        )
    )
    .cte("allowed")
)
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
        list(_AUDIT_PARAMETERS),
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
_INSERT_NOTES = HotQuery(
    select(_INSERTED_NOTES.c.id).add_cte(_NOTE_AUDIT_ROWS).add_cte(_NOTE_EVENTS)
)
_INSERT_NOTE = HotQuery(
    insert(_notes).values({c.name: bindparam(c.name, type_=c.type) for c in _notes.c})
)


# ---- rows to domain objects ----


def _patient(row: Any) -> Patient:
    return Patient(
        id=str(row.id),
        name=row.name,
        date_of_birth=row.date_of_birth,
        sex=row.sex,
        mrn=row.mrn,
        care_team=tuple(str(member) for member in row.care_team),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _note(row: Any) -> Note:
    return Note(
        id=str(row.id),
        patient_id=str(row.patient_id),
        author_id=str(row.author_id),
        content=row.content,
        note_time=row.note_time,
        created_at=row.created_at,
    )


def _audit_event(row: Any) -> AuditEvent:
    return AuditEvent(
        id=str(row.id),
        actor_id=str(row.actor_id),
        action=row.action,
        patient_id=str(row.patient_id),
        note_id=None if row.note_id is None else str(row.note_id),
        occurred_at=row.occurred_at,
        trace_id=row.trace_id,
    )


def _violated(error: exc.IntegrityError, constraint: str) -> bool:
    diag = getattr(error.orig, "diag", None)
    return getattr(diag, "constraint_name", None) == constraint


def _patient_values(patient: Patient) -> dict[str, Any]:
    return {
        "name": patient.name,
        "date_of_birth": patient.date_of_birth,
        "sex": patient.sex,
        "mrn": patient.mrn,
        "updated_at": patient.updated_at,
    }


# ---- repositories ----


class PatientRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, patient: Patient) -> None:
        """Inserts the patient and its care team; MrnAlreadyExists when the MRN is taken."""
        values = {"id": patient.id, "created_at": patient.created_at, **_patient_values(patient)}
        members = [
            {"patient_id": patient.id, "user_id": member, "added_at": patient.created_at}
            for member in patient.care_team
        ]
        try:
            # A savepoint: the unique violation must not poison the whole transaction.
            async with self._connection.begin_nested():
                await self._connection.execute(insert(_patients).values(values))
                await self._connection.execute(insert(_team).values(members))
        except exc.IntegrityError as error:
            if _violated(error, _MRN_UNIQUE):
                raise MrnAlreadyExists() from None
            raise

    async def get(self, patient_id: str, *, viewer: str | None) -> Patient | None:
        if viewer is None:
            row = await fetch_first(self._connection, _PATIENT_BY_ID, {"patient_id": patient_id})
        else:
            values = {"patient_id": patient_id, "viewer": viewer}
            row = await fetch_first(self._connection, _PATIENT_FOR_MEMBER, values)
        return None if row is None else _patient(row)

    async def lock(self, patient_id: str) -> None:
        """Serializes changes to one patient (its care team above all) until commit."""
        await self._connection.execute(
            select(_patients.c.id).where(_patients.c.id == patient_id).with_for_update()
        )

    async def save(self, patient: Patient) -> None:
        statement = update(_patients).where(_patients.c.id == patient.id)
        try:
            async with self._connection.begin_nested():
                await self._connection.execute(statement.values(_patient_values(patient)))
        except exc.IntegrityError as error:
            if _violated(error, _MRN_UNIQUE):
                raise MrnAlreadyExists() from None
            raise

    async def delete(self, patient_id: str) -> None:
        # Its care team and notes go by ON DELETE CASCADE; its audit trail stays.
        await self._connection.execute(delete(_patients).where(_patients.c.id == patient_id))

    async def add_member(self, patient_id: str, user_id: str, at: datetime) -> None:
        statement = pg_insert(_team).values(patient_id=patient_id, user_id=user_id, added_at=at)
        await self._connection.execute(statement.on_conflict_do_nothing())

    async def remove_member(self, patient_id: str, user_id: str) -> None:
        await self._connection.execute(
            delete(_team).where(_team.c.patient_id == patient_id, _team.c.user_id == user_id)
        )

    async def list_page(self, query: PatientQuery) -> list[tuple[Patient, SortValue]]:
        result = await self._connection.execute(patient_page_statement(query))
        return [(_patient(row), row.sort_value) for row in result]


class NoteRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, note: Note) -> None:
        # No savepoint: a failed insert ends the use case, whose rollback takes it all.
        try:
            await execute(self._connection, _INSERT_NOTE, vars(note))
        except psycopg.errors.ForeignKeyViolation as error:
            if error.diag.constraint_name == _NOTE_PATIENT_FK:  # the patient was deleted
                raise PatientNotFound() from None
            raise

    async def get(self, patient_id: str, note_id: str) -> Note | None:
        statement = select(_notes).where(_notes.c.id == note_id, _notes.c.patient_id == patient_id)
        row = (await self._connection.execute(statement)).first()
        return None if row is None else _note(row)

    async def list_page(
        self, patient_id: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[Note]:
        result = await self._connection.execute(note_page_statement(patient_id, after, limit))
        return [_note(row) for row in result]

    async def delete(self, patient_id: str, note_id: str) -> bool:
        statement = delete(_notes).where(_notes.c.id == note_id, _notes.c.patient_id == patient_id)
        result = await self._connection.execute(statement.returning(_notes.c.id))
        return result.first() is not None

    async def delete_all(self, patient_id: str) -> list[str]:
        """Deletes every note of the patient; their ids, oldest first."""
        statement = delete(_notes).where(_notes.c.patient_id == patient_id)
        result = await self._connection.execute(
            statement.returning(_notes.c.id, _notes.c.note_time)
        )
        return [str(note_id) for note_id, _ in sorted(result, key=lambda row: (row[1], row[0]))]


class AuditRepository:
    """Appends to the audit trail and reads it; it has no way to change or remove a row."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def record(self, events: Sequence[AuditEvent]) -> None:
        if len(events) == 1:  # most calls: one read or change of one patient
            await execute(self._connection, _INSERT_AUDIT, vars(events[0]))
        elif events:
            columns = {name: [getattr(e, name) for e in events] for name in _AUDIT_PARAMETERS}
            await execute(self._connection, _INSERT_AUDIT_ROWS, columns)

    async def record_if_visible(self, event: AuditEvent, *, viewer: str | None) -> bool:
        values = vars(event)
        if viewer is None:
            row = await fetch_first(self._connection, _VISIBLE_READ_BY_ADMIN, values)
        else:
            row = await fetch_first(
                self._connection, _VISIBLE_READ_BY_MEMBER, {**values, "viewer": viewer}
            )
        return row is not None

    async def list_page(self, query: AuditQuery) -> list[AuditEvent]:
        result = await self._connection.execute(audit_page_statement(query))
        return [_audit_event(row) for row in result]


class IdempotencyRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        """None when `record` is the first with its key; else the first one.

        A concurrent first request holds the key's index entry until it commits or rolls
        back; ON CONFLICT waits for that outcome, so exactly one request creates.
        """
        keys = tables.idempotency_keys
        claimed = await self._connection.execute(
            pg_insert(keys)
            .values(vars(record))
            .on_conflict_do_nothing()
            .returning(keys.c.request_id)
        )
        if claimed.first() is not None:
            return None
        row = (
            await self._connection.execute(
                select(keys).where(
                    keys.c.caller_id == record.caller_id, keys.c.request_id == record.request_id
                )
            )
        ).one()
        return IdempotencyRecord(
            caller_id=str(row.caller_id),
            request_id=str(row.request_id),
            request_hash=bytes(row.request_hash),
            resource_id=str(row.resource_id),
            created_at=row.created_at,
        )


class EventOutbox:
    """Stages events in the business transaction; the relay publishes them after commit."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def stage(self, event: Event, *, now: datetime) -> None:
        outbox_event = OutboxEvent(event.event_type, event.patient_id, event.payload)
        await stage_event(self._connection, tables.outbox, outbox_event, now=now)


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
        span_attributes={
            "db.system": "postgresql",
            "db.name": "medstation_patient",
            "db.statement": query.sql,
        },
    )


@dataclass(frozen=True)
class VisibleRead:
    """A read to record if `viewer` may see the patient (None: an admin, who sees all),
    with the patient this process held when the read began (None: not cached)."""

    event: AuditEvent
    viewer: str | None
    cached: Versioned[Patient] | None


def _read_row(read: VisibleRead) -> dict[str, str | None]:
    event = read.event
    return {
        "id": event.id,
        "actor_id": event.actor_id,
        "action": event.action,
        "patient_id": event.patient_id,
        "note_id": event.note_id,
        "occurred_at": event.occurred_at.isoformat(),
        "trace_id": event.trace_id,
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
        found = {str(row.read_id): row for row in rows}
        return [self._patient(read, found.get(read.event.id)) for read in reads]

    def _patient(self, read: VisibleRead, row: Any | None) -> Patient | None:
        if row is None:
            return None
        if row.care_team is None and read.cached is not None:
            # The statement sends no care team when the version the read held is current.
            self._cache.served()
            return read.cached.value
        patient = _patient(row)
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
            if len(batch) == 1 and error.diag.constraint_name == _NOTE_PATIENT_FK:
                return [False]
            raise
        inserted = {str(row.id) for row in rows}
        return [new.note.id in inserted for new in batch]


class PatientUnitOfWork(UnitOfWork):
    patients: PatientRepository
    notes: NoteRepository
    audit: AuditRepository
    idempotency: IdempotencyRepository
    events: EventOutbox

    def bind(self, connection: AsyncConnection) -> None:
        self.patients = PatientRepository(connection)
        self.notes = NoteRepository(connection)
        self.audit = AuditRepository(connection)
        self.idempotency = IdempotencyRepository(connection)
        self.events = EventOutbox(connection)
