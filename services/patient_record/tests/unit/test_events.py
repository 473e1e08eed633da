"""Events staged in the business transaction: the facts consumers need, and no PHI."""

from __future__ import annotations

import json

import pytest

from medstation_platform.auth.principal import Principal
from patient_record import use_cases
from patient_record.domain import Event, MrnAlreadyExists
from patient_record.use_cases import PatientChanges, Records
from services.patient_record.tests.unit import samples
from services.patient_record.tests.unit.fakes import FakeDatabase

NAME = "Johnathan Smithers"
MRN = "MRN-PHI-4711"
BIRTH = "1961-07-04"
CONTENT = "S: chest pain radiating to the left arm"


def _assert_no_phi(events: list[Event]) -> None:
    text = json.dumps([event.payload for event in events])
    for secret in (NAME, "Smithers", MRN, BIRTH, CONTENT, "chest pain"):
        assert secret not in text


async def test_every_change_stages_its_event_and_none_carries_phi(
    records: Records, database: FakeDatabase, doctor: Principal, colleague: Principal
) -> None:
    patient = await samples.patient(
        records, doctor, samples.details(name=NAME, date_of_birth=BIRTH, mrn=MRN)
    )
    first = await samples.note(records, doctor, patient.id, CONTENT)
    second = await samples.note(records, doctor, patient.id, CONTENT)
    third = await samples.note(records, doctor, patient.id, CONTENT)
    await use_cases.update_patient(records, doctor, patient.id, PatientChanges(name="J. Smithers"))
    await use_cases.add_care_team_member(records, doctor, patient.id, colleague.user_id)
    await use_cases.delete_note(records, doctor, patient.id, first.id)
    deleted = await use_cases.delete_all_notes(records, doctor, patient.id)
    await samples.note(records, doctor, patient.id, CONTENT)
    await use_cases.delete_patient(records, doctor, patient.id)

    events = database.committed.events
    assert [(event.event_type, event.patient_id) for event in events] == [
        ("note.created", patient.id),
        ("note.created", patient.id),
        ("note.created", patient.id),
        ("patient.updated", patient.id),
        ("patient.updated", patient.id),
        ("note.deleted", patient.id),
        ("note.deleted", patient.id),
        ("note.deleted", patient.id),
        ("note.created", patient.id),
        ("patient.deleted", patient.id),
    ]
    assert deleted == 2
    assert events[3].payload["changed_fields"] == ["name"]
    assert events[4].payload["changed_fields"] == ["care_team"]
    assert events[4].payload["care_team"] == [doctor.user_id, colleague.user_id]
    assert events[5].payload["note_id"] == first.id
    # DeleteAllNotes deletes in no promised order: the two notes share one note_time.
    assert {event.payload["note_id"] for event in events[6:8]} == {second.id, third.id}
    assert events[-1].payload["note_count"] == 1
    _assert_no_phi(events)


async def test_an_update_that_changes_nothing_stages_nothing(
    records: Records, database: FakeDatabase, doctor: Principal
) -> None:
    patient = await samples.patient(records, doctor, samples.details(name=NAME))

    same = await use_cases.update_patient(records, doctor, patient.id, PatientChanges(name=NAME))

    assert same == patient
    assert database.committed.events == []


async def test_a_failed_change_stages_nothing(
    records: Records, database: FakeDatabase, doctor: Principal
) -> None:
    patient = await samples.patient(records, doctor)
    taken = await samples.patient(records, doctor)

    with pytest.raises(MrnAlreadyExists):
        await use_cases.update_patient(
            records, doctor, patient.id, PatientChanges(name="New", mrn=taken.mrn)
        )

    assert database.committed.events == []
