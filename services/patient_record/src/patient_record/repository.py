"""The patient-record service's SQL run in a use case's own transaction (or statement by
statement): repositories stage, the unit of work commits. The two statements concurrent
requests share are in shared_statements. The statements are built by module functions so
that tests can EXPLAIN exactly what the repositories run."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import (
    REAL,
    BindParameter,
    ColumnElement,
    Date,
    DateTime,
    Integer,
    Select,
    Text,
    Uuid,
    and_,
    bindparam,
    cast,
    column,
    delete,
    exc,
    exists,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeEngine

from medstation_platform.db import UnitOfWork
from medstation_platform.hot_sql import HotQuery, execute, fetch_all, fetch_first
from medstation_platform.outbox import OutboxEvent, stage_event
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
UUID = Uuid(as_uuid=False)
TIMESTAMP = DateTime(timezone=True)
_MRN_UNIQUE = "patients_mrn_key"
NOTE_PATIENT_FK = "notes_patient_id_fkey"

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


def care_team_of(patient_id: ColumnElement[Any]) -> ColumnElement[Any]:
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
    return [*_patients.c, care_team_of(_patients.c.id).label("care_team")]


def is_member(
    patient_id: ColumnElement[Any] | str, user_id: ColumnElement[Any] | str
) -> ColumnElement[bool]:
    return exists().where(_team.c.patient_id == patient_id, _team.c.user_id == user_id)


def patient_statement(
    patient_id: str | BindParameter[Any], viewer: str | BindParameter[Any] | None
) -> Select[Any]:
    """The patient with its care team, if `viewer` may see it (None: anyone may)."""
    statement = select(*_patient_columns()).where(_patients.c.id == patient_id)
    if viewer is not None:
        statement = statement.where(is_member(_patients.c.id, viewer))
    return statement


def _sort_expression(order: PatientOrder) -> ColumnElement[Any]:
    if order.key == "relevance":
        return func.strict_word_similarity(_SEARCH, _patients.c.name, type_=REAL)
    return _patients.c[order.key]


# A page's values travel as parameters: the statement of each shape (sort, direction,
# viewer or admin, search or not, first page or not) is built and compiled once.
_SEARCH = bindparam("search", type_=Text)
_VIEWER = bindparam("viewer", type_=UUID)
_AFTER_ID = bindparam("after_id", type_=UUID)
_LIMIT = bindparam("limit", type_=Integer)
_SORT_BOUND_TYPES: dict[str, TypeEngine[Any]] = {
    "name": Text(),
    "date_of_birth": Date(),
    "created_at": TIMESTAMP,
    "relevance": REAL(),
}


def _sort_bound(order: PatientOrder) -> ColumnElement[Any]:
    bound = bindparam("after_value", type_=_SORT_BOUND_TYPES[order.key])
    # The similarity is a float4: the bound must be one too, or the float8 the token
    # carried would compare unequal to the very row it came from.
    return cast(bound, REAL) if order.key == "relevance" else bound


def _name_matches() -> ColumnElement[bool]:
    # pg_trgm's strict word similarity (at least 0.5 by default): the query is similar
    # to a run of whole words of the name, so "Jonathan Smithrs" finds "Johnathan
    # Smithers" and "smith" finds "John Smith". One operator, not `%` OR `<%`: the
    # planner prices an OR of two trigram index scans above a sequential scan.
    return _SEARCH.op("<<%", is_comparison=True)(_patients.c.name)


@functools.cache
def _page_shape(order: PatientOrder, *, viewer: bool, search: bool, after: bool) -> Select[Any]:
    sort = _sort_expression(order)
    statement = select(*_patient_columns(), sort.label("sort_value"))
    if viewer:
        statement = statement.join(
            _team, and_(_team.c.patient_id == _patients.c.id, _team.c.user_id == _VIEWER)
        )
    if search:
        statement = statement.where(_name_matches())
    keys = tuple_(sort, _patients.c.id)
    if after:
        bound = tuple_(_sort_bound(order), _AFTER_ID)
        statement = statement.where(keys < bound if order.descending else keys > bound)
    if order.descending:
        statement = statement.order_by(sort.desc(), _patients.c.id.desc())
    else:
        statement = statement.order_by(sort, _patients.c.id)
    return statement.limit(_LIMIT)


@functools.cache
def _page_query(order: PatientOrder, *, viewer: bool, search: bool, after: bool) -> HotQuery:
    return HotQuery(_page_shape(order, viewer=viewer, search=search, after=after))


def _page_values(query: PatientQuery) -> dict[str, object]:
    values: dict[str, object] = {"limit": query.limit}
    if query.viewer is not None:
        values["viewer"] = query.viewer
    if query.search:
        values["search"] = query.search
    if query.after is not None:
        values["after_value"], values["after_id"] = query.after
    return values


def patient_page_query(query: PatientQuery) -> tuple[HotQuery, dict[str, object]]:
    """The prepared statement list_page runs for `query`'s shape, and its values."""
    return _page_query(query.order, **_shape_of(query)), _page_values(query)


def _shape_of(query: PatientQuery) -> dict[str, bool]:
    return {
        "viewer": query.viewer is not None,
        "search": bool(query.search),
        "after": query.after is not None,
    }


def patient_page_statement(query: PatientQuery) -> Select[Any]:
    """`query.limit` patients after the cursor, keyset-paginated on (sort value, id): the
    statement list_page runs, with the query's values bound."""
    return _page_shape(query.order, **_shape_of(query)).params(_page_values(query))


def note_page_statement(
    patient_id: str, after: tuple[datetime, str] | None, limit: int
) -> Select[Any]:
    """A patient's notes, newest note_time first."""
    statement = select(_notes).where(_notes.c.patient_id == patient_id)
    if after is not None:
        note_time, note_id = after
        bound = tuple_(literal(note_time, TIMESTAMP), literal(note_id, UUID))
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
        bound = tuple_(literal(occurred_at, TIMESTAMP), literal(event_id, UUID))
        statement = statement.where(tuple_(_audit.c.occurred_at, _audit.c.id) < bound)
    order = (_audit.c.occurred_at.desc(), _audit.c.id.desc())
    return statement.order_by(*order).limit(query.limit)


# GetPatient's statements, every read of a patient runs them: compiled once (hot_sql).
AUDIT_COLUMNS: dict[str, TypeEngine[Any]] = {
    "id": UUID,
    "actor_id": UUID,
    "action": Text(),
    "patient_id": UUID,
    "note_id": UUID,
    "occurred_at": TIMESTAMP,
    "trace_id": Text(),
}
_HOT_VALUES: dict[str, ColumnElement[Any]] = {
    name: bindparam(name, type_=kind) for name, kind in AUDIT_COLUMNS.items()
}
_PATIENT_BY_ID = HotQuery(patient_statement(bindparam("patient_id", type_=UUID), None))
# Every call on a patient or its notes first checks the caller is on its care team.
_PATIENT_FOR_MEMBER = HotQuery(
    patient_statement(bindparam("patient_id", type_=UUID), bindparam("viewer", type_=UUID))
)
_INSERT_AUDIT = HotQuery(insert(_audit).values(_HOT_VALUES))
# Many audit rows (a page of ListPatients) in one statement whose text never changes, so
# it is prepared once: the rows travel as one JSON array of objects. A multi-row VALUES
# list is a new statement for each row count, compiled by SQLAlchemy every time; one
# array per column costs psycopg a dump of every element (a regular-expression check of
# each UUID), a third of a 50-patient page's CPU.
_AUDIT_ROWS = (
    func.json_to_recordset(bindparam("rows", type_=JSON))
    .table_valued(*(column(name, kind) for name, kind in AUDIT_COLUMNS.items()))
    .render_derived(with_types=True)
)
_INSERT_AUDIT_ROWS = HotQuery(
    insert(_audit).from_select(list(AUDIT_COLUMNS), select(*_AUDIT_ROWS.c))
)


def audit_row(event: AuditEvent) -> dict[str, str | None]:
    """`event` as a row of the JSON documents the audit statements read."""
    return {
        "id": event.id,
        "actor_id": event.actor_id,
        "action": event.action,
        "patient_id": event.patient_id,
        "note_id": event.note_id,
        "occurred_at": event.occurred_at.isoformat(),
        "trace_id": event.trace_id,
    }


# A batch of reads, each recorded only if its viewer may see the patient (a NULL viewer,
# an admin, sees every patient that exists): many requests' access checks and audit
# rows in one prepared statement, which returns the ids of the rows it recorded.
_INSERT_NOTE = HotQuery(
    insert(_notes).values({c.name: bindparam(c.name, type_=c.type) for c in _notes.c})
)


# ---- rows to domain objects ----


def patient_from_row(row: Any) -> Patient:
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
        return None if row is None else patient_from_row(row)

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
        page, values = patient_page_query(query)
        rows = await fetch_all(self._connection, page, values)
        return [(patient_from_row(row), row.sort_value) for row in rows]


class NoteRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, note: Note) -> None:
        # No savepoint: a failed insert ends the use case, whose rollback takes it all.
        try:
            await execute(self._connection, _INSERT_NOTE, vars(note))
        except psycopg.errors.ForeignKeyViolation as error:
            if error.diag.constraint_name == NOTE_PATIENT_FK:  # the patient was deleted
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
            document = json.dumps([audit_row(event) for event in events], separators=(",", ":"))
            await execute(self._connection, _INSERT_AUDIT_ROWS, {"rows": document})

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
