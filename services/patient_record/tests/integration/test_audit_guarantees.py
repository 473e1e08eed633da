"""What the audit trail guarantees beyond recording: no read or change succeeds unless its
audit event was written, and no session, not even a replication one, edits the trail."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import grpc
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.rpc_failures import failure
from medstation.patient.v1 import patient_service_pb2 as pb
from services.patient_record.tests.integration.patient_client import Caller, PatientClient

if TYPE_CHECKING:
    from medstation.patient.v1.patient_service_pb2_grpc import PatientRecordServiceAsyncStub

RefuseAudit = Callable[[Caller], Awaitable[None]]


@pytest.fixture
async def refuse_audit_of(engine: AsyncEngine) -> AsyncIterator[RefuseAudit]:
    """Makes the database refuse every audit event of one caller, as a full disk or a
    broken audit table would: the trigger raises on their INSERT only."""
    created: list[str] = []

    async def refuse(caller: Caller) -> None:
        name = f"test_refuse_audit_{secrets.token_hex(4)}"
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    f"CREATE TRIGGER {name} BEFORE INSERT ON audit_events FOR EACH ROW"
                    f" WHEN (NEW.actor_id = '{caller.user_id}'::uuid)"
                    " EXECUTE FUNCTION audit_events_append_only()"
                )
            )
        created.append(name)

    yield refuse
    async with engine.begin() as connection:
        for name in created:
            await connection.execute(text(f"DROP TRIGGER {name} ON audit_events"))


async def _internal_error(call: Awaitable[object]) -> None:
    """The call fails as a bug does: INTERNAL, saying nothing of SQL or the trigger."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert raised.value.details() == "internal error"


async def test_reads_fail_without_data_when_their_audit_event_cannot_be_written(
    client: PatientClient, stub: PatientRecordServiceAsyncStub, refuse_audit_of: RefuseAudit
) -> None:
    doctor = client.clinician()
    patient = await client.create_patient(doctor)
    note = await client.create_note(doctor, patient.id)
    await stub.GetPatient(pb.GetPatientRequest(id=patient.id), metadata=doctor.metadata)

    await refuse_audit_of(doctor)

    for call in (
        stub.GetPatient(pb.GetPatientRequest(id=patient.id), metadata=doctor.metadata),
        stub.ListPatients(pb.ListPatientsRequest(), metadata=doctor.metadata),
        stub.GetNote(
            pb.GetNoteRequest(patient_id=patient.id, id=note.id), metadata=doctor.metadata
        ),
        stub.ListNotes(pb.ListNotesRequest(patient_id=patient.id), metadata=doctor.metadata),
    ):
        await _internal_error(call)


async def test_changes_are_undone_when_their_audit_event_cannot_be_written(
    client: PatientClient, stub: PatientRecordServiceAsyncStub, refuse_audit_of: RefuseAudit
) -> None:
    doctor, colleague, admin = client.clinician(), client.clinician(), client.admin()
    patient = await client.create_patient(doctor, "Kept Name")
    await client.add_member(doctor, patient.id, colleague.user_id)

    await refuse_audit_of(colleague)

    renamed = pb.UpdatePatientRequest(patient=pb.Patient(id=patient.id, name="Changed Name"))
    await _internal_error(stub.UpdatePatient(renamed, metadata=colleague.metadata))
    await _internal_error(client.create_note(colleague, patient.id, "S: never stored"))
    await _internal_error(
        stub.DeletePatient(pb.DeletePatientRequest(id=patient.id), metadata=colleague.metadata)
    )

    kept = await stub.GetPatient(pb.GetPatientRequest(id=patient.id), metadata=doctor.metadata)
    notes = await stub.ListNotes(
        pb.ListNotesRequest(patient_id=patient.id), metadata=doctor.metadata
    )
    assert kept.name == "Kept Name"
    assert list(notes.notes) == []
    trail = await client.audit_trail(admin, patient_id=patient.id)
    assert colleague.user_id not in {event.actor_id for event in trail}


async def test_a_refused_audit_event_leaves_other_callers_alone(
    client: PatientClient, stub: PatientRecordServiceAsyncStub, refuse_audit_of: RefuseAudit
) -> None:
    doctor, other = client.clinician(), client.clinician()
    patient = await client.create_patient(doctor)

    await refuse_audit_of(other)

    read = await stub.GetPatient(pb.GetPatientRequest(id=patient.id), metadata=doctor.metadata)
    assert read.id == patient.id
    # An outsider is still answered "not found", never "internal": no read, no event.
    missing = await failure(
        stub.GetPatient(pb.GetPatientRequest(id=patient.id), metadata=other.metadata)
    )
    assert missing.code == grpc.StatusCode.NOT_FOUND


async def test_reads_sharing_a_statement_fail_only_for_the_refused_caller(
    client: PatientClient, stub: PatientRecordServiceAsyncStub, refuse_audit_of: RefuseAudit
) -> None:
    """Concurrent reads share one audit statement (a group commit): a row PostgreSQL
    refuses must fail its own read, never the reads it was batched with."""
    doctor, refused = client.clinician(), client.clinician()
    patient = await client.create_patient(doctor)
    await client.add_member(doctor, patient.id, refused.user_id)
    await refuse_audit_of(refused)
    get = pb.GetPatientRequest(id=patient.id)

    calls = [stub.GetPatient(get, metadata=c.metadata) for c in [doctor, refused] * 20]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)

    assert all(isinstance(o, pb.Patient) for o in outcomes[0::2])
    refused_codes = {o.code() for o in outcomes[1::2] if isinstance(o, grpc.aio.AioRpcError)}
    assert refused_codes == {grpc.StatusCode.INTERNAL}
    assert len([o for o in outcomes[1::2] if isinstance(o, grpc.aio.AioRpcError)]) == 20


async def test_notes_sharing_a_statement_are_kept_but_the_refused_callers(
    client: PatientClient, stub: PatientRecordServiceAsyncStub, refuse_audit_of: RefuseAudit
) -> None:
    """Concurrent notes share one statement too: the refused caller's notes are not
    stored, and the others' are, each with its audit event."""
    doctor, refused, admin = client.clinician(), client.clinician(), client.admin()
    patient = await client.create_patient(doctor)
    await client.add_member(doctor, patient.id, refused.user_id)
    await refuse_audit_of(refused)

    authors = [doctor, refused] * 10
    outcomes = await asyncio.gather(
        *(
            client.create_note(author, patient.id, f"S: note {n}")
            for n, author in enumerate(authors)
        ),
        return_exceptions=True,
    )

    assert all(isinstance(o, pb.Note) for o in outcomes[0::2])
    assert all(isinstance(o, grpc.aio.AioRpcError) for o in outcomes[1::2])
    notes = await stub.ListNotes(
        pb.ListNotesRequest(patient_id=patient.id, page_size=100), metadata=doctor.metadata
    )
    assert {note.author_id for note in notes.notes} == {doctor.user_id}
    assert len(notes.notes) == 10
    trail = await client.audit_trail(admin, patient_id=patient.id)
    created = [event for event in trail if event.action == "note.create"]
    assert {event.note_id for event in created} == {note.id for note in notes.notes}


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET action = 'patient.nothing' WHERE patient_id = %s",
        "DELETE FROM audit_events WHERE patient_id = %s",
        "TRUNCATE audit_events",
    ],
)
async def test_not_even_a_replication_session_edits_the_trail(
    statement: str, client: PatientClient, database_url: str, postgres_admin_url: str
) -> None:
    """`session_replication_role = replica` (pg_restore --disable-triggers, logical
    replication) skips ordinary triggers; the audit trail's fire always. Checked as the
    superuser, the only kind of session allowed to switch to replica mode."""
    doctor = client.clinician()
    patient = await client.create_patient(doctor)
    database = make_url(database_url).database
    admin = make_url(postgres_admin_url).set(drivername="postgresql", database=database)

    async with await psycopg.AsyncConnection.connect(
        admin.render_as_string(hide_password=False)
    ) as connection:
        await connection.execute("SET session_replication_role = replica")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            await connection.execute(statement, [patient.id] if "%s" in statement else [])
        await connection.rollback()
        cursor = await connection.execute(
            "SELECT count(*) FROM audit_events WHERE patient_id = %s", [patient.id]
        )
        assert await cursor.fetchone() == (1,)
