"""Care teams decide access: outsiders get NOT_FOUND on every path, until added and again
once removed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import grpc
import msgspec

from devstack.ports import free_port
from devstack.rpc_failures import failure
from medstation.patient.v1 import patient_service_pb2 as pb
from medstation.patient.v1 import patient_service_pb2_grpc as pb_grpc
from medstation_platform.auth.tokens import TokenVerifier
from patient_record import bootstrap
from patient_record.settings import PatientSettings
from services.patient_record.tests.integration.conftest import serve
from services.patient_record.tests.integration.patient_client import (
    UNKNOWN_ID,
    Caller,
    PatientClient,
    TokenIssuer,
    not_found,
)

if TYPE_CHECKING:
    from medstation.patient.v1.patient_service_pb2_grpc import PatientRecordServiceAsyncStub

Path = Callable[["PatientRecordServiceAsyncStub", Caller, str, str], Awaitable[object]]

# Every RPC that names a patient, as (stub, caller, patient id, note id) -> call. Reads
# first; the destructive ones last, so one patient serves the whole walk.
PATHS: list[tuple[str, Path]] = [
    (
        "GetPatient",
        lambda s, c, p, n: s.GetPatient(pb.GetPatientRequest(id=p), metadata=c.metadata),
    ),
    (
        "ListNotes",
        lambda s, c, p, n: s.ListNotes(pb.ListNotesRequest(patient_id=p), metadata=c.metadata),
    ),
    (
        "GetNote",
        lambda s, c, p, n: s.GetNote(pb.GetNoteRequest(patient_id=p, id=n), metadata=c.metadata),
    ),
    (
        "UpdatePatient",
        lambda s, c, p, n: s.UpdatePatient(
            pb.UpdatePatientRequest(patient=pb.Patient(id=p, sex="other")), metadata=c.metadata
        ),
    ),
    (
        "CreateNote",
        lambda s, c, p, n: s.CreateNote(
            pb.CreateNoteRequest(patient_id=p, content="S: fine"), metadata=c.metadata
        ),
    ),
    (
        "AddCareTeamMember",
        lambda s, c, p, n: s.AddCareTeamMember(
            pb.AddCareTeamMemberRequest(id=p, user_id=c.user_id), metadata=c.metadata
        ),
    ),
    (
        "RemoveCareTeamMember",
        lambda s, c, p, n: s.RemoveCareTeamMember(
            pb.RemoveCareTeamMemberRequest(id=p, user_id=UNKNOWN_ID), metadata=c.metadata
        ),
    ),
    (
        "DeleteNote",
        lambda s, c, p, n: s.DeleteNote(
            pb.DeleteNoteRequest(patient_id=p, id=n), metadata=c.metadata
        ),
    ),
    (
        "DeleteAllNotes",
        lambda s, c, p, n: s.DeleteAllNotes(
            pb.DeleteAllNotesRequest(patient_id=p), metadata=c.metadata
        ),
    ),
    (
        "DeletePatient",
        lambda s, c, p, n: s.DeletePatient(pb.DeletePatientRequest(id=p), metadata=c.metadata),
    ),
]


async def _hidden_from(
    stub: PatientRecordServiceAsyncStub, caller: Caller, patient_id: str, note_id: str
) -> None:
    for _, path in PATHS:
        await not_found(path(stub, caller, patient_id, note_id))
    page = await stub.ListPatients(pb.ListPatientsRequest(), metadata=caller.metadata)
    assert patient_id not in {patient.id for patient in page.patients}


async def test_a_second_clinician_sees_nothing_until_added_and_nothing_once_removed(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    owner, second = client.clinician(), client.clinician()
    patient = await client.create_patient(owner)
    note = await client.create_note(owner, patient.id)
    await stub.GetPatient(pb.GetPatientRequest(id=patient.id), metadata=owner.metadata)

    await _hidden_from(stub, second, patient.id, note.id)
    # Indistinguishable from a patient that does not exist.
    await _hidden_from(stub, second, UNKNOWN_ID, note.id)

    added = await client.add_member(owner, patient.id, second.user_id)
    assert list(added.care_team) == [owner.user_id, second.user_id]
    for name, path in PATHS[:-3]:  # all but the deletions, which would end the walk
        assert await path(stub, second, patient.id, note.id) is not None, name
    page = await stub.ListPatients(pb.ListPatientsRequest(), metadata=second.metadata)
    assert [p.id for p in page.patients] == [patient.id]

    await client.remove_member(owner, patient.id, second.user_id)
    await _hidden_from(stub, second, patient.id, note.id)
    # The owner still has it all.
    for name, path in PATHS:
        assert await path(stub, owner, patient.id, note.id) is not None, name


async def test_the_last_member_cannot_leave(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    owner, admin = client.clinician(), client.admin()
    patient = await client.create_patient(owner)

    for caller in (owner, admin):
        failed = await failure(client.remove_member(caller, patient.id, owner.user_id))
        assert (failed.code, failed.reason) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "LAST_CARE_TEAM_MEMBER",
        )
    read = await stub.GetPatient(pb.GetPatientRequest(id=patient.id), metadata=owner.metadata)
    assert list(read.care_team) == [owner.user_id]


async def test_members_hand_a_patient_over(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    owner, successor = client.clinician(), client.clinician()
    patient = await client.create_patient(owner)

    await client.add_member(owner, patient.id, successor.user_id)
    left = await client.remove_member(successor, patient.id, owner.user_id)

    assert list(left.care_team) == [successor.user_id]
    await not_found(stub.GetPatient(pb.GetPatientRequest(id=patient.id), metadata=owner.metadata))


async def test_admins_see_and_change_every_patient(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    owner, admin = client.clinician(), client.admin()
    patient = await client.create_patient(owner)
    note = await client.create_note(owner, patient.id)

    for name, path in PATHS:
        assert await path(stub, admin, patient.id, note.id) is not None, name


async def test_a_removed_member_gets_not_found_at_once(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    owner, second = client.clinician(), client.clinician()
    patient = await client.create_patient(owner)
    await client.add_member(owner, patient.id, second.user_id)
    get = pb.GetPatientRequest(id=patient.id)
    await stub.GetPatient(get, metadata=second.metadata)

    await client.remove_member(owner, patient.id, second.user_id)

    await not_found(stub.GetPatient(get, metadata=second.metadata))


async def test_updates_and_membership_changes_are_seen_by_the_next_read(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    owner, second = client.clinician(), client.clinician()
    patient = await client.create_patient(owner, "Before Update")
    get = pb.GetPatientRequest(id=patient.id)
    await stub.GetPatient(get, metadata=owner.metadata)

    await stub.UpdatePatient(
        pb.UpdatePatientRequest(patient=pb.Patient(id=patient.id, name="After Update")),
        metadata=owner.metadata,
    )
    after_update = await stub.GetPatient(get, metadata=owner.metadata)
    await client.add_member(owner, patient.id, second.user_id)
    after_add = await stub.GetPatient(get, metadata=owner.metadata)
    await stub.DeletePatient(pb.DeletePatientRequest(id=patient.id), metadata=owner.metadata)

    assert after_update.name == "After Update"
    assert list(after_add.care_team) == [owner.user_id, second.user_id]
    await not_found(stub.GetPatient(get, metadata=owner.metadata))


async def test_with_redis_down_reads_and_writes_work_from_postgresql(
    settings: PatientSettings, verifier: TokenVerifier, issuer: TokenIssuer
) -> None:
    nowhere = msgspec.structs.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    service = await bootstrap.build(nowhere, verifier=verifier)
    running = await serve(service)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            client = PatientClient(pb_grpc.PatientRecordServiceStub(channel), issuer)
            owner, second = client.clinician(), client.clinician()
            patient = await client.create_patient(owner, "No Cache")
            get = pb.GetPatientRequest(id=patient.id)

            first = await client.stub.GetPatient(get, metadata=owner.metadata)
            await client.add_member(owner, patient.id, second.user_id)
            seen_by_second = await client.stub.GetPatient(get, metadata=second.metadata)
            await client.remove_member(owner, patient.id, second.user_id)
            await not_found(client.stub.GetPatient(get, metadata=second.metadata))

            assert first == patient
            assert list(seen_by_second.care_team) == [owner.user_id, second.user_id]
    finally:
        await running.stop(grace_seconds=0)
        await service.close()
