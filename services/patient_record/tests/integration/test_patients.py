"""CreatePatient, GetPatient, UpdatePatient, DeletePatient through the stub."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf import field_mask_pb2

from devstack.rpc_failures import failure
from medstation.patient.v1 import patient_service_pb2 as pb
from services.patient_record.tests.integration.patient_client import PatientClient, not_found

if TYPE_CHECKING:
    from medstation.patient.v1.patient_service_pb2_grpc import PatientRecordServiceAsyncStub


async def test_create_then_get_returns_the_patient_with_its_creator_on_the_care_team(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    mrn = f"MRN-{secrets.token_hex(4)}"

    created = await client.create_patient(
        doctor, "  Grace   Hopper ", date_of_birth="1906-12-09", sex="female", mrn=mrn
    )
    read = await stub.GetPatient(pb.GetPatientRequest(id=created.id), metadata=doctor.metadata)

    assert read == created
    assert (read.name, read.date_of_birth, read.sex, read.mrn) == (
        "Grace Hopper",
        "1906-12-09",
        "female",
        mrn,
    )
    assert list(read.care_team) == [doctor.user_id]
    assert read.created_at == read.updated_at


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"date_of_birth": "2023-02-30"}, "date_of_birth"),
        ({"date_of_birth": "2999-01-01"}, "date_of_birth"),
        ({"date_of_birth": "1980/01/01"}, "date_of_birth"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"sex": "SEX_FEMALE"}, "sex"),
        ({"request_id": "not-a-uuid"}, "request_id"),
    ],
)
async def test_create_rejects_bad_input_naming_the_field(
    fields: dict[str, str], field: str, client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    valid = {"name": "Valid Name", "date_of_birth": "1980-01-01", "sex": "male"}
    request = pb.CreatePatientRequest(**(valid | fields))

    failed = await failure(stub.CreatePatient(request, metadata=doctor.metadata))

    assert (failed.code, failed.fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field])


async def test_calls_without_a_valid_token_are_unauthenticated(
    stub: PatientRecordServiceAsyncStub,
) -> None:
    request = pb.ListPatientsRequest()

    missing = await failure(stub.ListPatients(request))
    forged = await failure(
        stub.ListPatients(request, metadata=(("authorization", "Bearer e30.e30.c2ln"),))
    )

    assert (missing.code, missing.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
    assert (forged.code, forged.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")


async def test_mrns_are_unique(client: PatientClient, stub: PatientRecordServiceAsyncStub) -> None:
    doctor, other = client.clinician(), client.clinician()
    mrn = f"MRN-{secrets.token_hex(4)}"
    await client.create_patient(doctor, mrn=mrn)
    second = await client.create_patient(other)

    on_create = await failure(client.create_patient(other, mrn=mrn))
    update = pb.UpdatePatientRequest(patient=pb.Patient(id=second.id, mrn=mrn))
    on_update = await failure(stub.UpdatePatient(update, metadata=other.metadata))

    for failed in (on_create, on_update):
        assert (failed.code, failed.reason) == (
            grpc.StatusCode.ALREADY_EXISTS,
            "MRN_ALREADY_EXISTS",
        )
    assert on_update.fields == ["patient.mrn"]


async def test_update_changes_the_masked_fields_only(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    created = await client.create_patient(doctor, "Alan Turing", mrn=f"M-{secrets.token_hex(4)}")
    body = pb.Patient(id=created.id, name="Alan M. Turing", sex="male", mrn="")
    mask = field_mask_pb2.FieldMask(paths=["name", "mrn"])

    updated = await stub.UpdatePatient(
        pb.UpdatePatientRequest(patient=body, update_mask=mask), metadata=doctor.metadata
    )
    read = await stub.GetPatient(pb.GetPatientRequest(id=created.id), metadata=doctor.metadata)

    assert read == updated
    assert (read.name, read.sex, read.mrn) == ("Alan M. Turing", "unknown", "")
    assert read.updated_at.ToDatetime() > created.updated_at.ToDatetime()


@pytest.mark.parametrize(
    ("patient", "paths", "field"),
    [
        (pb.Patient(date_of_birth="2023-02-30"), [], "patient.date_of_birth"),
        (pb.Patient(name=" "), [], "patient.name"),
        (pb.Patient(), ["care_team"], "update_mask"),
        (pb.Patient(sex="f"), [], "patient.sex"),
    ],
)
async def test_update_rejects_bad_input_naming_the_field(
    patient: pb.Patient,
    paths: list[str],
    field: str,
    client: PatientClient,
    stub: PatientRecordServiceAsyncStub,
) -> None:
    doctor = client.clinician()
    created = await client.create_patient(doctor)
    body = pb.Patient()
    body.CopyFrom(patient)
    body.id = created.id
    request = pb.UpdatePatientRequest(
        patient=body, update_mask=field_mask_pb2.FieldMask(paths=paths)
    )

    failed = await failure(stub.UpdatePatient(request, metadata=doctor.metadata))

    assert (failed.code, failed.fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field])


async def test_delete_removes_the_patient_and_its_notes(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    patient = await client.create_patient(doctor)
    note = await client.create_note(doctor, patient.id)

    await stub.DeletePatient(pb.DeletePatientRequest(id=patient.id), metadata=doctor.metadata)

    await not_found(stub.GetPatient(pb.GetPatientRequest(id=patient.id), metadata=doctor.metadata))
    await not_found(
        stub.GetNote(pb.GetNoteRequest(patient_id=patient.id, id=note.id), metadata=doctor.metadata)
    )
    await not_found(
        stub.DeletePatient(pb.DeletePatientRequest(id=patient.id), metadata=doctor.metadata)
    )


async def test_a_retried_create_returns_the_first_patient(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    request_id = str(uuid.uuid4())

    first = await client.create_patient(doctor, "Retry Me", request_id=request_id)
    again = await client.create_patient(doctor, "Retry Me", request_id=request_id)
    reused = await failure(client.create_patient(doctor, "Someone Else", request_id=request_id))
    other_caller = await client.create_patient(
        client.clinician(), "Retry Me", request_id=request_id
    )

    assert again == first
    assert (reused.code, reused.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "IDEMPOTENCY_KEY_REUSED",
    )
    assert other_caller.id != first.id
    page = await stub.ListPatients(pb.ListPatientsRequest(), metadata=doctor.metadata)
    assert [patient.id for patient in page.patients] == [first.id]


async def test_concurrent_retries_create_one_patient(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    request_id = str(uuid.uuid4())

    results = await asyncio.gather(
        *(client.create_patient(doctor, "Racing", request_id=request_id) for _ in range(5))
    )

    assert len({patient.id for patient in results}) == 1
    page = await stub.ListPatients(pb.ListPatientsRequest(), metadata=doctor.metadata)
    assert len(page.patients) == 1


SQL_METACHARACTERS = [
    "' OR '1'='1",
    "'; DROP TABLE patients; --",
    '" OR ""="',
    "%_\\",
    "1; SELECT pg_sleep(10)",
    "\x00",
]


@pytest.mark.parametrize("text", SQL_METACHARACTERS)
async def test_sql_metacharacters_in_ids_are_bad_requests(
    text: str, client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    metadata = doctor.metadata

    calls: list[Awaitable[object]] = [
        stub.GetPatient(pb.GetPatientRequest(id=text), metadata=metadata),
        stub.DeletePatient(pb.DeletePatientRequest(id=text), metadata=metadata),
        stub.ListNotes(pb.ListNotesRequest(patient_id=text), metadata=metadata),
        stub.GetNote(pb.GetNoteRequest(patient_id=text, id=text), metadata=metadata),
        stub.AddCareTeamMember(
            pb.AddCareTeamMemberRequest(id=str(uuid.uuid4()), user_id=text), metadata=metadata
        ),
        stub.ListAuditEvents(pb.ListAuditEventsRequest(actor_id=text), metadata=metadata),
    ]
    for call in calls:
        failed = await failure(call)
        assert failed.code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("text", SQL_METACHARACTERS)
async def test_sql_metacharacters_in_text_are_just_text(
    text: str, client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    name = f"Bobby {text} Tables"

    if "\x00" in text:  # PostgreSQL text cannot hold NUL: refused as bad input, not a 500
        on_name = await failure(client.create_patient(doctor, name))
        on_query = await failure(
            stub.ListPatients(pb.ListPatientsRequest(query=text), metadata=doctor.metadata)
        )
        assert (on_name.code, on_name.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["name"])
        assert (on_query.code, on_query.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["query"])
        return
    created = await client.create_patient(doctor, name)
    found = await stub.ListPatients(pb.ListPatientsRequest(query=text), metadata=doctor.metadata)
    bad_order = await failure(
        stub.ListPatients(pb.ListPatientsRequest(order_by=text), metadata=doctor.metadata)
    )
    bad_token = await failure(
        stub.ListPatients(pb.ListPatientsRequest(page_token=text), metadata=doctor.metadata)
    )

    assert created.name == " ".join(name.split())
    assert all(patient.id == created.id for patient in found.patients)
    assert (bad_order.code, bad_order.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["order_by"])
    assert (bad_token.code, bad_token.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ["page_token"],
    )


async def test_a_note_time_far_ahead_names_note_time(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    patient = await client.create_patient(doctor)
    request = pb.CreateNoteRequest(patient_id=patient.id, content="S: ok")
    request.note_time.FromDatetime(datetime.now(UTC) + timedelta(days=2))

    failed = await failure(stub.CreateNote(request, metadata=doctor.metadata))

    assert (failed.code, failed.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["note_time"])
