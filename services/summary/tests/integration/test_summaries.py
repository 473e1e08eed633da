"""GetSummary and ListSummaries against the real patient-record service: a real chart is
summarized once, reused while it is unchanged, and summarized again when it changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.rpc_failures import failure
from medstation.patient.v1 import patient_service_pb2 as patient_pb
from medstation.summary.v1 import summary_service_pb2 as pb
from services.patient_record.tests.integration.patient_client import PatientClient
from services.summary.tests.integration.summary_client import (
    add_note,
    age_today,
    count_rows,
    pneumonia_patient,
)
from summary import tables

if TYPE_CHECKING:
    from medstation.summary.v1.summary_service_pb2_grpc import SummaryServiceAsyncStub


async def test_a_two_visit_pneumonia_chart_is_summarized(
    patients: PatientClient, summaries: SummaryServiceAsyncStub
) -> None:
    doctor = patients.clinician()
    patient = await pneumonia_patient(patients, doctor)
    summary = await summaries.GetSummary(
        pb.GetSummaryRequest(patient_id=patient.id), metadata=doctor.metadata
    )
    assert summary.patient_id == patient.id
    assert (summary.note_count, summary.patient_age) == (2, age_today())
    assert (summary.provider, summary.model) == ("offline", "medstation-offline")
    assert summary.text.startswith(f"{age_today()}-year-old female")
    assert "pneumonia" in summary.text.lower()
    assert "amoxicillin" in summary.text
    assert summary.generated_at.ToDatetime(tzinfo=UTC) <= datetime.now(UTC)
    assert summary.latency_ms >= 0


async def test_unchanged_notes_reuse_the_summary_and_a_new_note_replaces_it(
    patients: PatientClient, summaries: SummaryServiceAsyncStub, engine: AsyncEngine
) -> None:
    doctor = patients.clinician()
    patient = await pneumonia_patient(patients, doctor)
    request = pb.GetSummaryRequest(patient_id=patient.id)
    first = await summaries.GetSummary(request, metadata=doctor.metadata)
    again = await summaries.GetSummary(request, metadata=doctor.metadata)
    assert again == first  # same id, same text, same generated_at
    await add_note(
        patients,
        doctor,
        patient.id,
        datetime(2026, 3, 24, 10, tzinfo=UTC),
        "S: Well.\nA: Pneumonia resolved.\nP: No further follow-up.",
    )
    newer = await summaries.GetSummary(request, metadata=doctor.metadata)
    assert newer.id != first.id
    assert newer.note_count == 3
    assert "resolved" in newer.text
    assert await count_rows(engine, tables.summaries, patient_id=patient.id) == 2

    listed = await summaries.ListSummaries(
        pb.ListSummariesRequest(patient_id=patient.id, page_size=1), metadata=doctor.metadata
    )
    assert [summary.id for summary in listed.summaries] == [newer.id]
    rest = await summaries.ListSummaries(
        pb.ListSummariesRequest(patient_id=patient.id, page_token=listed.next_page_token),
        metadata=doctor.metadata,
    )
    assert ([summary.id for summary in rest.summaries], rest.next_page_token) == ([first.id], "")


async def test_deleting_a_note_also_writes_a_new_summary(
    patients: PatientClient, summaries: SummaryServiceAsyncStub
) -> None:
    doctor = patients.clinician()
    patient = await pneumonia_patient(patients, doctor)
    request = pb.GetSummaryRequest(patient_id=patient.id)
    first = await summaries.GetSummary(request, metadata=doctor.metadata)
    notes = await patients.stub.ListNotes(
        patient_pb.ListNotesRequest(patient_id=patient.id), metadata=doctor.metadata
    )
    await patients.stub.DeleteNote(
        patient_pb.DeleteNoteRequest(patient_id=patient.id, id=notes.notes[0].id),
        metadata=doctor.metadata,
    )
    second = await summaries.GetSummary(request, metadata=doctor.metadata)
    assert (second.id != first.id, second.note_count) == (True, 1)


async def test_a_chart_longer_than_one_page_is_read_whole(
    patients: PatientClient, summaries: SummaryServiceAsyncStub
) -> None:
    doctor = patients.clinician()
    patient = await patients.create_patient(doctor)
    for day in range(1, 106):
        stamp = datetime(2025, 1, 1, tzinfo=UTC).replace(day=1 + day % 28, month=1 + day // 28)
        await add_note(patients, doctor, patient.id, stamp, f"S: visit {day}\nA: follow-up")
    summary = await summaries.GetSummary(
        pb.GetSummaryRequest(patient_id=patient.id), metadata=doctor.metadata
    )
    assert summary.note_count == 105


async def test_a_patient_without_notes_cannot_be_summarized(
    patients: PatientClient, summaries: SummaryServiceAsyncStub
) -> None:
    doctor = patients.clinician()
    patient = await patients.create_patient(doctor)
    failed = await failure(
        summaries.GetSummary(pb.GetSummaryRequest(patient_id=patient.id), metadata=doctor.metadata)
    )
    assert (failed.code, failed.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "PATIENT_HAS_NO_NOTES",
    )
