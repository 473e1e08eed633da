"""request_id makes CreatePatient and CreateNote safe to retry (AIP-155)."""

from __future__ import annotations

import uuid

import pytest

from medstation_platform.auth.principal import Principal
from patient_record import use_cases
from patient_record.domain import IdempotencyKeyReused, MrnAlreadyExists, PatientNotFound
from patient_record.use_cases import NoteDetails, Records
from services.patient_record.tests.unit import samples
from services.patient_record.tests.unit.fakes import FakeDatabase


async def test_a_retried_create_patient_returns_the_first_patient(
    records: Records, database: FakeDatabase, doctor: Principal
) -> None:
    request_id = str(uuid.uuid4())
    sample = samples.details()

    first = await use_cases.create_patient(records, doctor, sample, request_id=request_id)
    again = await use_cases.create_patient(records, doctor, sample, request_id=request_id)

    assert again == first
    assert list(database.committed.patients) == [first.id]
    actions = [event.action for event in database.committed.audit]
    assert actions == ["patient.create", "patient.read"]


async def test_another_request_under_the_same_key_is_refused(
    records: Records, database: FakeDatabase, doctor: Principal
) -> None:
    request_id = str(uuid.uuid4())
    await use_cases.create_patient(records, doctor, samples.details(), request_id=request_id)

    with pytest.raises(IdempotencyKeyReused) as raised:
        await use_cases.create_patient(
            records, doctor, samples.details(name="Someone Else"), request_id=request_id
        )

    assert raised.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert len(database.committed.patients) == 1


async def test_keys_belong_to_their_caller(
    records: Records, database: FakeDatabase, doctor: Principal, colleague: Principal
) -> None:
    request_id = str(uuid.uuid4())
    sample = samples.details(mrn="")

    mine = await use_cases.create_patient(records, doctor, sample, request_id=request_id)
    theirs = await use_cases.create_patient(records, colleague, sample, request_id=request_id)

    assert mine.id != theirs.id
    assert len(database.committed.patients) == 2


async def test_a_failed_create_leaves_the_key_unused(
    records: Records, doctor: Principal, colleague: Principal
) -> None:
    await samples.patient(records, colleague, samples.details(mrn="TAKEN"))
    request_id = str(uuid.uuid4())
    with pytest.raises(MrnAlreadyExists):
        await use_cases.create_patient(
            records, doctor, samples.details(mrn="TAKEN"), request_id=request_id
        )

    created = await use_cases.create_patient(
        records, doctor, samples.details(mrn="FREE"), request_id=request_id
    )

    assert created.mrn == "FREE"


async def test_a_retry_never_shows_a_patient_the_caller_may_no_longer_see(
    records: Records, doctor: Principal, colleague: Principal
) -> None:
    request_id = str(uuid.uuid4())
    sample = samples.details()
    patient = await use_cases.create_patient(records, doctor, sample, request_id=request_id)
    await use_cases.add_care_team_member(records, doctor, patient.id, colleague.user_id)
    await use_cases.remove_care_team_member(records, colleague, patient.id, doctor.user_id)

    with pytest.raises(PatientNotFound):
        await use_cases.create_patient(records, doctor, sample, request_id=request_id)


async def test_a_retried_create_note_returns_the_first_note(
    records: Records, database: FakeDatabase, doctor: Principal
) -> None:
    patient = await samples.patient(records, doctor)
    request_id = str(uuid.uuid4())
    details = NoteDetails("S: headache", None)

    first = await use_cases.create_note(records, doctor, patient.id, details, request_id=request_id)
    again = await use_cases.create_note(records, doctor, patient.id, details, request_id=request_id)
    with pytest.raises(IdempotencyKeyReused):
        await use_cases.create_note(
            records, doctor, patient.id, NoteDetails("S: other", None), request_id=request_id
        )

    assert again == first
    assert list(database.committed.notes) == [first.id]
    assert [event.event_type for event in database.committed.events] == ["note.created"]
