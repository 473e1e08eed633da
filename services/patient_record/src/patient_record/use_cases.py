"""What the patient-record service does, one function per use case; each commits at most once.

Access: a patient is visible to its care team and to admins; to anyone else it does not
exist (PatientNotFound), on every path. Audit: every read and change of a patient or note
appends audit events in the same transaction as the change, and reads commit theirs
before the result is returned.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from medstation_platform import errors
from medstation_platform.auth.principal import Principal
from medstation_platform.pagination import JsonScalar, Page, PageTokenCodec, resolve_page_size
from patient_record.domain import (
    Action,
    AdminRequired,
    AuditEvent,
    IdempotencyKeyReused,
    IdempotencyRecord,
    LastCareTeamMember,
    MrnAlreadyExists,
    Note,
    NoteNotFound,
    Patient,
    PatientNotFound,
    check_note_content,
    check_sex,
    clean_mrn,
    clean_name,
    clean_search,
    latest_date_on_earth,
    note_created,
    note_deleted,
    parse_date_of_birth,
    parse_order_by,
    patient_deleted,
    patient_updated,
    resolve_note_time,
)
from patient_record.repository import AuditQuery, PatientQuery, PatientUnitOfWork
from patient_record.shared_statements import NoteInserts, PatientReads

T = TypeVar("T")
V = TypeVar("V")


@dataclass(frozen=True)
class Records:
    """The patient-record service's collaborators, built once by `bootstrap`."""

    unit_of_work: Callable[[], PatientUnitOfWork]
    # The statements of the two busiest calls, GetPatient and CreateNote: each checks
    # access and records the audit row in the statement that reads or writes, and each
    # is shared by the concurrent requests that need it (a group commit).
    reads: PatientReads
    new_notes: NoteInserts
    page_tokens: PageTokenCodec
    idempotency_secret: bytes
    clock: Callable[[], datetime]
    trace_id: Callable[[], str]  # the current W3C trace id, "" outside a trace


@dataclass(frozen=True)
class PatientDetails:
    name: str
    date_of_birth: str
    sex: str
    mrn: str


@dataclass(frozen=True)
class PatientChanges:
    """The fields an update sets; None leaves a field as it is ("" clears the MRN)."""

    name: str | None = None
    date_of_birth: str | None = None
    sex: str | None = None
    mrn: str | None = None


@dataclass(frozen=True)
class NoteDetails:
    content: str
    note_time: datetime | None


@dataclass(frozen=True)
class PageRequest:
    page_size: int
    page_token: str


# ---- patients ----


async def create_patient(
    records: Records, principal: Principal, details: PatientDetails, *, request_id: str
) -> Patient:
    now = records.clock()
    patient = Patient(
        id=str(uuid.uuid4()),
        name=clean_name(details.name),
        date_of_birth=parse_date_of_birth(details.date_of_birth, today=latest_date_on_earth(now)),
        sex=check_sex(details.sex),
        mrn=clean_mrn(details.mrn),
        care_team=(principal.user_id,),
        created_at=now,
        updated_at=now,
    )
    fingerprint = [
        "CreatePatient",
        patient.name,
        patient.date_of_birth.isoformat(),
        patient.sex,
        patient.mrn or "",
    ]
    async with records.unit_of_work() as uow:
        first = await _first_result(records, uow, principal, request_id, fingerprint, patient.id)
        if first is not None:
            patient = await _visible(uow, principal, first)
            await uow.audit.record([_audit(records, principal, Action.PATIENT_READ, patient.id)])
        else:
            await uow.patients.add(patient)
            await uow.audit.record([_audit(records, principal, Action.PATIENT_CREATE, patient.id)])
        await uow.commit()
    return patient


async def list_patients(
    records: Records, principal: Principal, page: PageRequest, *, query: str, order_by: str
) -> Page[Patient]:
    limit = resolve_page_size(page.page_size)
    search = clean_search(query)
    order = parse_order_by(order_by, searching=bool(search))
    scope = _scope("patients", principal.user_id, order.spelling, search)
    after = _decode_cursor(records, scope, page.page_token, order.from_json)
    async with records.unit_of_work().autocommit() as uow:
        rows = await uow.patients.list_page(
            PatientQuery(_viewer(principal), order, search, after, limit + 1)
        )
        rows, next_token = _paginate(
            records, scope, rows, limit, lambda row: [order.to_json(row[1]), row[0].id]
        )
        patients = [patient for patient, _ in rows]
        await uow.audit.record(
            [_audit(records, principal, Action.PATIENT_LIST, patient.id) for patient in patients]
        )
        await uow.commit()
    return Page(patients, next_token)


async def get_patient(records: Records, principal: Principal, patient_id: str) -> Patient:
    read = _audit(records, principal, Action.PATIENT_READ, patient_id)
    patient = await records.reads.read_patient(read, viewer=_viewer(principal))
    if patient is None:
        raise PatientNotFound()
    return patient


async def update_patient(
    records: Records, principal: Principal, patient_id: str, changes: PatientChanges
) -> Patient:
    now = records.clock()
    wanted = _cleaned(changes, now)
    async with records.unit_of_work() as uow:
        await uow.patients.lock(patient_id)
        patient = await _visible(uow, principal, patient_id)
        changed = sorted(
            field for field, value in wanted.items() if getattr(patient, field) != value
        )
        if changed:
            patient = patient.changed(now, **{field: wanted[field] for field in changed})
            try:
                await uow.patients.save(patient)
            except MrnAlreadyExists:
                raise MrnAlreadyExists("patient.mrn") from None
            await uow.events.stage(patient_updated(patient, changed), now=now)
        await uow.audit.record([_audit(records, principal, Action.PATIENT_UPDATE, patient_id)])
        await uow.commit()
    return patient


async def delete_patient(records: Records, principal: Principal, patient_id: str) -> None:
    now = records.clock()
    async with records.unit_of_work() as uow:
        await uow.patients.lock(patient_id)  # no note can be added while it goes
        await _visible(uow, principal, patient_id)
        note_ids = await uow.notes.delete_all(patient_id)
        await uow.audit.record(
            [
                *(_audit(records, principal, Action.NOTE_DELETE, patient_id, n) for n in note_ids),
                _audit(records, principal, Action.PATIENT_DELETE, patient_id),
            ]
        )
        await uow.patients.delete(patient_id)
        # One event for the patient and its notes: consumers purge by patient.
        await uow.events.stage(patient_deleted(patient_id, len(note_ids), now), now=now)
        await uow.commit()


async def add_care_team_member(
    records: Records, principal: Principal, patient_id: str, user_id: str
) -> Patient:
    def add(patient: Patient) -> tuple[str, ...]:
        if user_id in patient.care_team:
            return patient.care_team
        return (*patient.care_team, user_id)

    return await _change_care_team(
        records, principal, patient_id, user_id, Action.CARE_TEAM_ADD, add
    )


async def remove_care_team_member(
    records: Records, principal: Principal, patient_id: str, user_id: str
) -> Patient:
    def remove(patient: Patient) -> tuple[str, ...]:
        remaining = tuple(member for member in patient.care_team if member != user_id)
        if not remaining:
            raise LastCareTeamMember()
        return remaining

    return await _change_care_team(
        records, principal, patient_id, user_id, Action.CARE_TEAM_REMOVE, remove
    )


async def _change_care_team(
    records: Records,
    principal: Principal,
    patient_id: str,
    user_id: str,
    action: str,
    new_team: Callable[[Patient], tuple[str, ...]],
) -> Patient:
    now = records.clock()
    async with records.unit_of_work() as uow:
        # The lock serializes membership changes: two members removing each other at
        # once must not leave the patient with nobody.
        await uow.patients.lock(patient_id)
        patient = await _visible(uow, principal, patient_id)
        team = new_team(patient)
        changed = team != patient.care_team
        if changed:
            if user_id in team:
                await uow.patients.add_member(patient_id, user_id, now)
            else:
                await uow.patients.remove_member(patient_id, user_id)
            patient = patient.changed(now, care_team=team)
            await uow.patients.save(patient)
            await uow.events.stage(patient_updated(patient, ["care_team"]), now=now)
        await uow.audit.record([_audit(records, principal, action, patient_id)])
        await uow.commit()
    return patient


# ---- notes ----


async def create_note(
    records: Records,
    principal: Principal,
    patient_id: str,
    details: NoteDetails,
    *,
    request_id: str,
) -> Note:
    now = records.clock()
    note = Note(
        id=str(uuid.uuid4()),
        patient_id=patient_id,
        author_id=principal.user_id,
        content=check_note_content(details.content),
        note_time=resolve_note_time(details.note_time, now=now),
        created_at=now,
    )
    if request_id:
        given_time = "" if details.note_time is None else details.note_time.isoformat()
        fingerprint = ["CreateNote", patient_id, note.content, given_time]
        return await _create_note_once(records, principal, note, request_id, fingerprint)
    # PostgreSQL decides access in the statement that inserts the note with its audit
    # row and its event, shared with the notes other requests create meanwhile.
    audit = _audit(records, principal, Action.NOTE_CREATE, patient_id, note.id)
    created = await records.new_notes.add(note, _viewer(principal), audit, note_created(note))
    if not created:
        raise PatientNotFound()
    return note


async def _create_note_once(
    records: Records,
    principal: Principal,
    note: Note,
    request_id: str,
    fingerprint: list[str],
) -> Note:
    """CreateNote with an idempotency key: the key, the note, its audit row and its event
    in one transaction, or the note the key made before."""
    patient_id = note.patient_id
    async with records.unit_of_work() as uow:
        await _visible(uow, principal, patient_id)
        first = await _first_result(records, uow, principal, request_id, fingerprint, note.id)
        if first is not None:
            note = await _existing_note(uow, patient_id, first)
            await uow.audit.record(
                [_audit(records, principal, Action.NOTE_READ, patient_id, first)]
            )
        else:
            await uow.notes.add(note)
            await uow.audit.record(
                [_audit(records, principal, Action.NOTE_CREATE, patient_id, note.id)]
            )
            await uow.events.stage(note_created(note), now=note.created_at)
        await uow.commit()
    return note


async def list_notes(
    records: Records, principal: Principal, patient_id: str, page: PageRequest
) -> Page[Note]:
    limit = resolve_page_size(page.page_size)
    scope = _scope("notes", principal.user_id, patient_id)
    after = _decode_cursor(records, scope, page.page_token, _datetime)
    async with records.unit_of_work().autocommit() as uow:
        await _visible(uow, principal, patient_id)
        notes = await uow.notes.list_page(patient_id, after=after, limit=limit + 1)
        notes, next_token = _paginate(
            records, scope, notes, limit, lambda note: [note.note_time.isoformat(), note.id]
        )
        # One event per note shown; an empty page still shows that there are none.
        read = [_audit(records, principal, Action.NOTE_LIST, patient_id, n.id) for n in notes]
        await uow.audit.record(read or [_audit(records, principal, Action.NOTE_LIST, patient_id)])
        await uow.commit()
    return Page(notes, next_token)


async def get_note(records: Records, principal: Principal, patient_id: str, note_id: str) -> Note:
    async with records.unit_of_work().autocommit() as uow:
        await _visible(uow, principal, patient_id)
        note = await _existing_note(uow, patient_id, note_id)
        await uow.audit.record([_audit(records, principal, Action.NOTE_READ, patient_id, note_id)])
        await uow.commit()
    return note


async def delete_note(
    records: Records, principal: Principal, patient_id: str, note_id: str
) -> None:
    now = records.clock()
    async with records.unit_of_work() as uow:
        await _visible(uow, principal, patient_id)
        if not await uow.notes.delete(patient_id, note_id):
            raise NoteNotFound()
        await uow.audit.record(
            [_audit(records, principal, Action.NOTE_DELETE, patient_id, note_id)]
        )
        await uow.events.stage(note_deleted(patient_id, note_id, now), now=now)
        await uow.commit()


async def delete_all_notes(records: Records, principal: Principal, patient_id: str) -> int:
    now = records.clock()
    async with records.unit_of_work() as uow:
        await _visible(uow, principal, patient_id)
        note_ids = await uow.notes.delete_all(patient_id)
        deleted = [_audit(records, principal, Action.NOTE_DELETE, patient_id, n) for n in note_ids]
        # With nothing to delete, the attempt on the patient's notes is still recorded.
        await uow.audit.record(
            deleted or [_audit(records, principal, Action.NOTE_DELETE, patient_id)]
        )
        for note_id in note_ids:
            await uow.events.stage(note_deleted(patient_id, note_id, now), now=now)
        await uow.commit()
    return len(note_ids)


# ---- the audit trail ----


async def list_audit_events(
    records: Records,
    principal: Principal,
    page: PageRequest,
    *,
    patient_id: str,
    actor_id: str,
) -> Page[AuditEvent]:
    if not principal.is_admin:
        raise AdminRequired()
    limit = resolve_page_size(page.page_size)
    scope = _scope("audit", principal.user_id, patient_id, actor_id)
    after = _decode_cursor(records, scope, page.page_token, _datetime)
    query = AuditQuery(patient_id or None, actor_id or None, after, limit + 1)
    async with records.unit_of_work() as uow:
        events = await uow.audit.list_page(query)
    events, next_token = _paginate(
        records, scope, events, limit, lambda event: [event.occurred_at.isoformat(), event.id]
    )
    return Page(events, next_token)


# ---- shared steps ----


def _viewer(principal: Principal) -> str | None:
    """Whose care teams limit what the caller sees; None for admins, who see everything."""
    return None if principal.is_admin else principal.user_id


async def _visible(uow: PatientUnitOfWork, principal: Principal, patient_id: str) -> Patient:
    patient = await uow.patients.get(patient_id, viewer=_viewer(principal))
    if patient is None:
        raise PatientNotFound()
    return patient


async def _existing_note(uow: PatientUnitOfWork, patient_id: str, note_id: str) -> Note:
    note = await uow.notes.get(patient_id, note_id)
    if note is None:
        raise NoteNotFound()
    return note


def _audit(
    records: Records,
    principal: Principal,
    action: str,
    patient_id: str,
    note_id: str | None = None,
) -> AuditEvent:
    return AuditEvent(
        id=str(uuid.uuid4()),
        actor_id=principal.user_id,
        action=action,
        patient_id=patient_id,
        note_id=note_id,
        occurred_at=records.clock(),
        trace_id=records.trace_id(),
    )


def _cleaned(changes: PatientChanges, now: datetime) -> dict[str, Any]:
    """The validated new values, named like the Patient fields they replace."""
    wanted: dict[str, Any] = {}
    if changes.name is not None:
        wanted["name"] = clean_name(changes.name, field="patient.name")
    if changes.date_of_birth is not None:
        wanted["date_of_birth"] = parse_date_of_birth(
            changes.date_of_birth, today=latest_date_on_earth(now), field="patient.date_of_birth"
        )
    if changes.sex is not None:
        wanted["sex"] = check_sex(changes.sex, field="patient.sex")
    if changes.mrn is not None:
        wanted["mrn"] = clean_mrn(changes.mrn, field="patient.mrn")
    return wanted


async def _first_result(
    records: Records,
    uow: PatientUnitOfWork,
    principal: Principal,
    request_id: str,
    fingerprint: list[str],
    resource_id: str,
) -> str | None:
    """None when this request is the first with its request_id (or has none); else the id
    of what the first one created. The same key with another request is refused."""
    if not request_id:
        return None
    message = json.dumps(fingerprint, separators=(",", ":")).encode()
    request_hash = hmac.new(records.idempotency_secret, message, hashlib.sha256).digest()
    first = await uow.idempotency.claim(
        IdempotencyRecord(
            caller_id=principal.user_id,
            request_id=request_id,
            request_hash=request_hash,
            resource_id=resource_id,
            created_at=records.clock(),
        )
    )
    if first is None:
        return None
    if not hmac.compare_digest(first.request_hash, request_hash):
        raise IdempotencyKeyReused()
    return first.resource_id


def _scope(*parts: str) -> str:
    """What a page token is bound to: the list, the caller, and the list's parameters."""
    return json.dumps(parts, separators=(",", ":"))


def _decode_cursor(
    records: Records, scope: str, token: str, parse: Callable[[JsonScalar], V]
) -> tuple[V, str] | None:
    if not token:
        return None
    key = records.page_tokens.decode(scope, token)
    try:
        value, last_id = key
        return parse(value), str(uuid.UUID(str(last_id)))
    except (ValueError, TypeError):
        # Signed by us for this scope, yet malformed: a token from an older release.
        raise errors.InvalidPageToken() from None


def _paginate(
    records: Records,
    scope: str,
    items: list[T],
    limit: int,
    cursor: Callable[[T], list[JsonScalar]],
) -> tuple[list[T], str]:
    """The page (the repository fetched one extra row to learn whether more follow)."""
    if len(items) <= limit:
        return items, ""
    items = items[:limit]
    return items, records.page_tokens.encode(scope, cursor(items[-1]))


def _datetime(raw: JsonScalar) -> datetime:
    if not isinstance(raw, str):
        raise ValueError("a timestamp must be a string")
    return datetime.fromisoformat(raw)
