"""A chat about a patient: only for the patient's care team (and admins, as the
patient-record service decides), and its model sees the patient's chart."""

from __future__ import annotations

import uuid

import pytest

from chat import use_cases
from chat.domain import Model, PatientNotFound
from chat.use_cases import Chats
from medstation_platform.auth.principal import Principal
from services.chat.tests.unit import samples
from services.chat.tests.unit.fakes import FakeDatabase, FakePatientRecords, ScriptedModel


@pytest.fixture
def patient_id(patients: FakePatientRecords, doctor: Principal) -> str:
    patient_id = str(uuid.uuid4())
    patients.add(
        patient_id,
        [doctor.user_id],
        samples.chart("S: knee pain\nP: naproxen 250 mg", "S: routine visit"),
    )
    return patient_id


async def test_the_care_team_chats_about_a_patient_and_the_model_sees_the_chart(
    chats: Chats,
    doctor: Principal,
    offline_model: Model,
    model: ScriptedModel,
    patients: FakePatientRecords,
    patient_id: str,
) -> None:
    chat = await samples.chat(chats, doctor, offline_model, patient_id=patient_id)

    await samples.send(chats, doctor, chat.id, "What does she take for pain?")

    assert chat.patient_id == patient_id
    [request] = model.requests
    assert request.patient is not None
    assert request.patient.age_years == 61
    assert request.patient.notes[0].content.endswith("naproxen 250 mg")
    assert patients.charts_read == [(doctor.user_id, patient_id)]


async def test_outsiders_cannot_start_a_chat_about_a_patient(
    chats: Chats,
    colleague: Principal,
    offline_model: Model,
    database: FakeDatabase,
    patient_id: str,
) -> None:
    with pytest.raises(PatientNotFound):
        await samples.chat(chats, colleague, offline_model, patient_id=patient_id)
    with pytest.raises(PatientNotFound):
        await samples.chat(chats, colleague, offline_model, patient_id=str(uuid.uuid4()))

    assert database.committed.chats == {}


async def test_leaving_the_care_team_closes_the_patients_chats(
    chats: Chats,
    doctor: Principal,
    offline_model: Model,
    model: ScriptedModel,
    patients: FakePatientRecords,
    database: FakeDatabase,
    patient_id: str,
) -> None:
    chat = await samples.chat(chats, doctor, offline_model, patient_id=patient_id)
    await samples.send(chats, doctor, chat.id, "first question")
    patients.patients[patient_id].care_team.clear()

    with pytest.raises(PatientNotFound):
        await samples.send(chats, doctor, chat.id, "second question")
    with pytest.raises(PatientNotFound):
        await use_cases.list_messages(chats, doctor, chat.id, samples.FIRST_PAGE)

    assert len(model.requests) == 1
    assert len(database.messages_of(chat.id)) == 2


async def test_an_admin_chats_about_any_patient(
    chats: Chats, admin: Principal, offline_model: Model, model: ScriptedModel, patient_id: str
) -> None:
    chat = await samples.chat(chats, admin, offline_model, patient_id=patient_id)

    await samples.send(chats, admin, chat.id, "summary?")

    assert model.requests[0].patient is not None
