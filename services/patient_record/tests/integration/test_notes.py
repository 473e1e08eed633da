"""CreateNote, ListNotes, GetNote, DeleteNote and DeleteAllNotes through the stub."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import grpc
import pytest

from devstack.rpc_failures import failure
from medstation.patient.v1 import patient_service_pb2 as pb
from patient_record.bootstrap import PatientService
from patient_record.domain import Note, PatientNotFound
from services.patient_record.tests.integration.patient_client import (
    UNKNOWN_ID,
    Caller,
    PatientClient,
)

if TYPE_CHECKING:
    from medstation.patient.v1.patient_service_pb2_grpc import PatientRecordServiceAsyncStub


async def _all_notes(
    stub: PatientRecordServiceAsyncStub, caller: Caller, patient_id: str, page_size: int
) -> list[pb.Note]:
    notes: list[pb.Note] = []
    request = pb.ListNotesRequest(patient_id=patient_id, page_size=page_size)
    while True:
        page = await stub.ListNotes(request, metadata=caller.metadata)
        assert len(page.notes) <= page_size
        notes += page.notes
        if not page.next_page_token:
            return notes
        request.page_token = page.next_page_token


async def test_notes_list_newest_note_time_first_across_pages(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    patient = await client.create_patient(doctor)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    created = []
    # Shuffled times with ties: the id breaks them, and no note is lost or repeated.
    for offset in (5, 1, 3, 3, 0, 9, 3, 7):
        request = pb.CreateNoteRequest(patient_id=patient.id, content=f"S: day {offset}")
        request.note_time.FromDatetime(base + timedelta(days=offset))
        created.append(await stub.CreateNote(request, metadata=doctor.metadata))

    listed = await _all_notes(stub, doctor, patient.id, page_size=3)

    def order(note: pb.Note) -> tuple[datetime, str]:
        return note.note_time.ToDatetime(), note.id

    assert listed == sorted(created, key=order, reverse=True)


async def test_a_note_reads_back_as_written(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    patient = await client.create_patient(doctor)
    content = "S: headache\nO: BP 120/80\nA: tension headache\nP: rest; 'ibuprofen' -- 400mg"

    note = await client.create_note(doctor, patient.id, content)
    read = await stub.GetNote(
        pb.GetNoteRequest(patient_id=patient.id, id=note.id), metadata=doctor.metadata
    )

    assert read == note
    assert (read.content, read.author_id, read.patient_id) == (content, doctor.user_id, patient.id)
    assert read.note_time == read.created_at


async def test_a_note_is_found_only_under_its_own_patient(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    patient, other = await client.create_patient(doctor), await client.create_patient(doctor)
    note = await client.create_note(doctor, patient.id)

    for request in (
        pb.GetNoteRequest(patient_id=other.id, id=note.id),
        pb.GetNoteRequest(patient_id=patient.id, id=UNKNOWN_ID),
    ):
        failed = await failure(stub.GetNote(request, metadata=doctor.metadata))
        assert (failed.code, failed.reason) == (grpc.StatusCode.NOT_FOUND, "NOTE_NOT_FOUND")


async def test_delete_note_and_delete_all_notes(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    patient = await client.create_patient(doctor)
    notes = [await client.create_note(doctor, patient.id) for _ in range(4)]
    metadata = doctor.metadata

    await stub.DeleteNote(
        pb.DeleteNoteRequest(patient_id=patient.id, id=notes[0].id), metadata=metadata
    )
    again = await failure(
        stub.DeleteNote(
            pb.DeleteNoteRequest(patient_id=patient.id, id=notes[0].id), metadata=metadata
        )
    )
    deleted = await stub.DeleteAllNotes(
        pb.DeleteAllNotesRequest(patient_id=patient.id), metadata=metadata
    )
    none_left = await stub.DeleteAllNotes(
        pb.DeleteAllNotesRequest(patient_id=patient.id), metadata=metadata
    )

    assert (again.code, again.reason) == (grpc.StatusCode.NOT_FOUND, "NOTE_NOT_FOUND")
    assert (deleted.deleted_count, none_left.deleted_count) == (3, 0)
    assert await _all_notes(stub, doctor, patient.id, page_size=10) == []


@pytest.mark.parametrize(
    ("content", "field"),
    [("", "content"), ("x" * 100_001, "content"), ("S: \x00", "content"), ("  ", "content")],
)
async def test_create_note_rejects_bad_content(
    content: str, field: str, client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    patient = await client.create_patient(doctor)
    request = pb.CreateNoteRequest(patient_id=patient.id, content=content)

    failed = await failure(stub.CreateNote(request, metadata=doctor.metadata))

    assert (failed.code, failed.fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field])


async def test_the_longest_note_is_accepted(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    patient = await client.create_patient(doctor)

    note = await client.create_note(doctor, patient.id, "S" * 100_000)

    assert len(note.content) == 100_000


async def test_a_retried_create_note_returns_the_first_note(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    patient = await client.create_patient(doctor)
    request = pb.CreateNoteRequest(
        patient_id=patient.id, content="S: once", request_id=str(uuid.uuid4())
    )

    first = await stub.CreateNote(request, metadata=doctor.metadata)
    again = await stub.CreateNote(request, metadata=doctor.metadata)
    request.content = "S: something else"
    reused = await failure(stub.CreateNote(request, metadata=doctor.metadata))

    assert again == first
    assert (reused.code, reused.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "IDEMPOTENCY_KEY_REUSED",
    )
    assert await _all_notes(stub, doctor, patient.id, page_size=10) == [first]


async def test_a_note_for_a_patient_deleted_meanwhile_is_patient_not_found(
    service: PatientService,
) -> None:
    """The race CreateNote's membership check cannot see: the patient is deleted between
    the check and the insert. The foreign key catches it; nothing is half-written."""
    now = datetime.now(UTC)
    note = Note(
        id=str(uuid.uuid4()),
        patient_id=UNKNOWN_ID,
        author_id=str(uuid.uuid4()),
        content="S: cough",
        note_time=now,
        created_at=now,
    )
    with pytest.raises(PatientNotFound):
        async with service.records.unit_of_work() as uow:
            await uow.notes.add(note)
    async with service.records.unit_of_work() as uow:
        assert await uow.notes.get(UNKNOWN_ID, note.id) is None
