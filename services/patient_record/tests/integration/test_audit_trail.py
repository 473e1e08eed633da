"""The PHI audit trail: every read and change on record, readable by admins only, and
impossible to edit or erase."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import grpc
import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.rpc_failures import failure
from medstation.patient.v1 import patient_service_pb2 as pb
from services.patient_record.tests.integration.patient_client import PatientClient

if TYPE_CHECKING:
    from medstation.patient.v1.patient_service_pb2_grpc import PatientRecordServiceAsyncStub


def _actions(events: list[pb.AuditEvent], actor_id: str) -> list[tuple[str, str]]:
    """(action, note id) of one actor's events, oldest first."""
    return [(e.action, e.note_id) for e in reversed(events) if e.actor_id == actor_id]


async def test_member_reads_and_changes_are_on_record(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    owner, member, admin = client.clinician(), client.clinician(), client.admin()
    patient = await client.create_patient(owner)
    await client.add_member(owner, patient.id, member.user_id)
    note = await client.create_note(member, patient.id)
    await stub.GetPatient(pb.GetPatientRequest(id=patient.id), metadata=member.metadata)
    await stub.GetPatient(pb.GetPatientRequest(id=patient.id), metadata=member.metadata)
    await stub.ListPatients(pb.ListPatientsRequest(), metadata=member.metadata)
    await stub.GetNote(
        pb.GetNoteRequest(patient_id=patient.id, id=note.id), metadata=member.metadata
    )
    await stub.ListNotes(pb.ListNotesRequest(patient_id=patient.id), metadata=member.metadata)

    trail = await client.audit_trail(admin, patient_id=patient.id)

    assert _actions(trail, owner.user_id) == [("patient.create", ""), ("care_team.add", "")]
    assert _actions(trail, member.user_id) == [
        ("note.create", note.id),
        ("patient.read", ""),
        ("patient.read", ""),
        ("patient.list", ""),
        ("note.read", note.id),
        ("note.list", note.id),
    ]
    assert {event.patient_id for event in trail} == {patient.id}
    for event in trail:
        assert re.fullmatch(r"([0-9a-f]{32})?", event.trace_id)
        assert event.occurred_at.seconds > 0


async def test_admin_reads_are_on_record(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    owner, admin, auditor = client.clinician(), client.admin(), client.admin()
    patient = await client.create_patient(owner)
    note = await client.create_note(owner, patient.id)
    for _ in range(2):  # a page of several rows, recorded by one statement
        await client.create_patient(owner)

    await stub.GetPatient(pb.GetPatientRequest(id=patient.id), metadata=admin.metadata)
    await stub.ListNotes(pb.ListNotesRequest(patient_id=patient.id), metadata=admin.metadata)
    await stub.GetNote(
        pb.GetNoteRequest(patient_id=patient.id, id=note.id), metadata=admin.metadata
    )
    before = datetime.now(UTC)
    listed = await stub.ListPatients(pb.ListPatientsRequest(page_size=5), metadata=admin.metadata)
    after = datetime.now(UTC)

    trail = await client.audit_trail(auditor, patient_id=patient.id)
    assert _actions(trail, admin.user_id)[:3] == [
        ("patient.read", ""),
        ("note.list", note.id),
        ("note.read", note.id),
    ]
    by_admin = await stub.ListAuditEvents(
        pb.ListAuditEventsRequest(actor_id=admin.user_id, page_size=100), metadata=auditor.metadata
    )
    listed_ids = {p.id for p in listed.patients}
    listings = [e for e in by_admin.audit_events if e.action == "patient.list"]
    assert {e.patient_id for e in listings} == listed_ids
    # One statement wrote the page's rows: each whole, none mixed with another's values.
    assert len(listed_ids) > 1
    assert len({e.id for e in listings}) == len(listings)
    assert {(e.note_id, e.trace_id) for e in listings} == {("", listings[0].trace_id)}
    slack = timedelta(seconds=1)  # the service's clock and ours, read apart
    for event in listings:
        assert before - slack <= event.occurred_at.ToDatetime(tzinfo=UTC) <= after + slack


async def test_only_admins_list_audit_events(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    patient = await client.create_patient(doctor)

    failed = await failure(
        stub.ListAuditEvents(
            pb.ListAuditEventsRequest(patient_id=patient.id), metadata=doctor.metadata
        )
    )

    assert (failed.code, failed.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ADMIN_REQUIRED")


async def test_audit_events_page_newest_first_and_filter(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor, admin = client.clinician(), client.admin()
    patient = await client.create_patient(doctor)
    for _ in range(6):
        await stub.GetPatient(pb.GetPatientRequest(id=patient.id), metadata=doctor.metadata)

    events: list[pb.AuditEvent] = []
    request = pb.ListAuditEventsRequest(patient_id=patient.id, actor_id=doctor.user_id, page_size=2)
    while True:
        page = await stub.ListAuditEvents(request, metadata=admin.metadata)
        assert len(page.audit_events) <= 2
        events += page.audit_events
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token

    assert [e.action for e in events] == ["patient.read"] * 6 + ["patient.create"]
    assert len({e.id for e in events}) == 7
    keys = [(e.occurred_at.ToDatetime(), e.id) for e in events]
    assert keys == sorted(keys, reverse=True)
    first = await stub.ListAuditEvents(
        pb.ListAuditEventsRequest(patient_id=patient.id, page_size=1), metadata=admin.metadata
    )
    # A token carries its filters: it cannot continue a list with other ones.
    other_filter = pb.ListAuditEventsRequest(
        actor_id=doctor.user_id, page_size=1, page_token=first.next_page_token
    )
    foreign = await failure(stub.ListAuditEvents(other_filter, metadata=admin.metadata))
    assert (foreign.code, foreign.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_token"])


async def test_deleting_a_patient_keeps_its_audit_trail(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor, admin = client.clinician(), client.admin()
    patient = await client.create_patient(doctor)
    note = await client.create_note(doctor, patient.id)

    await stub.DeletePatient(pb.DeletePatientRequest(id=patient.id), metadata=doctor.metadata)

    trail = await client.audit_trail(admin, patient_id=patient.id)
    assert _actions(trail, doctor.user_id) == [
        ("patient.create", ""),
        ("note.create", note.id),
        ("note.delete", note.id),
        ("patient.delete", ""),
    ]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET action = 'patient.nothing' WHERE patient_id = :patient_id",
        "DELETE FROM audit_events WHERE patient_id = :patient_id",
        "TRUNCATE audit_events",
    ],
)
async def test_the_database_refuses_to_change_or_erase_audit_events(
    statement: str, client: PatientClient, engine: AsyncEngine
) -> None:
    doctor = client.clinician()
    patient = await client.create_patient(doctor)

    async with engine.connect() as connection:
        with pytest.raises(exc.DBAPIError, match="append-only"):
            await connection.execute(text(statement), {"patient_id": patient.id})
        await connection.rollback()
        count = await connection.scalar(
            text("SELECT count(*) FROM audit_events WHERE patient_id = :patient_id"),
            {"patient_id": patient.id},
        )
    assert count == 1
