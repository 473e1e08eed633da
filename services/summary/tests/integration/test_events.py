"""The worker follows the patient-record service's events: a deleted patient's summaries
and jobs are purged, a new note marks the summaries written before it stale."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from medstation.patient.v1 import patient_service_pb2 as patient_pb
from medstation.summary.v1 import summary_service_pb2 as pb
from services.patient_record.tests.integration.patient_client import PatientClient
from services.summary.tests.integration.conftest import StartWorker
from services.summary.tests.integration.summary_client import (
    add_note,
    count_rows,
    create_job,
    pneumonia_patient,
    until_state,
)
from summary import tables

if TYPE_CHECKING:
    from medstation.summary.v1.summary_service_pb2_grpc import SummaryServiceAsyncStub


async def _eventually(check: Callable[[], Awaitable[bool]], within_seconds: float = 20) -> None:
    async with asyncio.timeout(within_seconds):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


async def test_a_deleted_patients_summaries_and_jobs_are_purged(
    patients: PatientClient,
    summaries: SummaryServiceAsyncStub,
    start_worker: StartWorker,
    engine: AsyncEngine,
) -> None:
    await start_worker()
    doctor = patients.clinician()
    deleted = await pneumonia_patient(patients, doctor)
    kept = await pneumonia_patient(patients, doctor)
    for chart in (deleted, kept):
        await summaries.GetSummary(
            pb.GetSummaryRequest(patient_id=chart.id), metadata=doctor.metadata
        )
    job = await create_job(summaries, doctor, deleted.id)
    await until_state(summaries, doctor, job.id)

    await patients.stub.DeletePatient(
        patient_pb.DeletePatientRequest(id=deleted.id), metadata=doctor.metadata
    )

    async def purged() -> bool:
        left = await count_rows(engine, tables.summaries, patient_id=deleted.id)
        return left + await count_rows(engine, tables.summary_jobs, patient_id=deleted.id) == 0

    await _eventually(purged)
    assert await count_rows(engine, tables.deleted_patients, patient_id=deleted.id) == 1
    assert await count_rows(engine, tables.summaries, patient_id=kept.id) == 1


async def test_a_new_note_marks_earlier_summaries_stale(
    patients: PatientClient,
    summaries: SummaryServiceAsyncStub,
    start_worker: StartWorker,
    engine: AsyncEngine,
) -> None:
    await start_worker()
    doctor = patients.clinician()
    patient = await pneumonia_patient(patients, doctor)
    summary = await summaries.GetSummary(
        pb.GetSummaryRequest(patient_id=patient.id), metadata=doctor.metadata
    )
    await add_note(patients, doctor, patient.id, datetime.now(UTC), "S: new cough")

    async def stale() -> bool:
        query = select(tables.summaries.c.stale).where(tables.summaries.c.id == summary.id)
        async with engine.connect() as connection:
            return bool(await connection.scalar(query))

    await _eventually(stale)
