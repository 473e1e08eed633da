"""Chats about a patient: allowed to the care team, 404 for anyone else, and the assistant
answers from the patient's record — read from the patient-record service as the caller."""

from __future__ import annotations

import grpc

from devstack.rpc_failures import failure
from medstation.patient.v1 import patient_service_pb2 as patient_pb
from services.chat.tests.integration.chat_client import ChatClient
from services.patient_record.tests.integration.patient_client import UNKNOWN_ID, PatientClient

NOTE = (
    "S: Joint pain in both knees for months.\n"
    "O: BP 128/82. Crepitus on flexion.\n"
    "A: Osteoarthritis of the knees.\n"
    "P: Start celecoxib 200 mg daily; physiotherapy."
)


async def test_the_assistant_answers_from_the_patients_notes(
    client: ChatClient, patients: PatientClient
) -> None:
    doctor = patients.clinician()
    patient = await patients.create_patient(doctor, "Nora Quill", date_of_birth="1955-05-20")
    await patients.create_note(doctor, patient.id, NOTE)

    chat = await client.create_chat(doctor, patient_id=patient.id)
    exchange = await client.send(doctor, chat.id, "What medications is the patient on?")

    assert chat.patient_id == patient.id
    reply = exchange.assistant_message.content
    assert "celecoxib 200 mg" in reply
    assert "Quill" not in reply  # the model never sees the name
    # The patient-record service saw the doctor read the record, not some service account.
    admin = patients.admin()
    trail = await patients.audit_trail(admin, patient_id=patient.id)
    reads = {(event.actor_id, event.action) for event in trail}
    assert (doctor.user_id, "patient.read") in reads
    assert (doctor.user_id, "note.list") in reads


async def test_only_the_care_team_may_chat_about_a_patient(
    client: ChatClient, patients: PatientClient
) -> None:
    doctor, outsider = patients.clinician(), patients.clinician()
    patient = await patients.create_patient(doctor)

    refused = await failure(client.create_chat(outsider, patient_id=patient.id))
    unknown = await failure(client.create_chat(doctor, patient_id=UNKNOWN_ID))
    await patients.add_member(doctor, patient.id, outsider.user_id)
    allowed = await client.create_chat(outsider, patient_id=patient.id)

    for failed in (refused, unknown):
        assert (failed.code, failed.reason) == (grpc.StatusCode.NOT_FOUND, "PATIENT_NOT_FOUND")
    assert allowed.patient_id == patient.id


async def test_leaving_the_care_team_ends_the_conversation(
    client: ChatClient, patients: PatientClient
) -> None:
    doctor, colleague = patients.clinician(), patients.clinician()
    patient = await patients.create_patient(doctor)
    await patients.add_member(doctor, patient.id, colleague.user_id)
    chat = await client.create_chat(colleague, patient_id=patient.id)
    await client.send(colleague, chat.id, "Any allergies?")
    assert "Any allergies?" in [m.content for m in await client.search(colleague, "allergies")]

    await patients.remove_member(doctor, patient.id, colleague.user_id)

    sent = await failure(client.send(colleague, chat.id, "And now?"))
    listed = await failure(client.messages(colleague, chat.id))
    for failed in (sent, listed):
        assert (failed.code, failed.reason) == (grpc.StatusCode.NOT_FOUND, "PATIENT_NOT_FOUND")
    # Nor do the chat, its title or its messages turn up anywhere else any more.
    assert await client.search(colleague, "allergies") == []
    hidden = await failure(client.get_chat(colleague, chat.id))
    assert hidden.code == grpc.StatusCode.NOT_FOUND
    assert chat.id not in [listed.id for listed in await client.list_chats(colleague)]


async def test_a_deleted_patient_cannot_be_chatted_about(
    client: ChatClient, patients: PatientClient
) -> None:
    doctor = patients.clinician()
    patient = await patients.create_patient(doctor)
    chat = await client.create_chat(doctor, patient_id=patient.id)
    await patients.stub.DeletePatient(
        patient_pb.DeletePatientRequest(id=patient.id), metadata=doctor.metadata
    )

    failed = await failure(client.send(doctor, chat.id, "How is she?"))

    assert failed.code == grpc.StatusCode.NOT_FOUND
