"""Shortcuts for the summary integration tests: a real chart, waiting for jobs, reading rows."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import timestamp_pb2
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from medstation.patient.v1 import patient_service_pb2 as patient_pb
from medstation.summary.v1 import summary_service_pb2 as pb
from medstation.summary.v1 import summary_service_pb2_grpc as summary_grpc
from services.patient_record.tests.integration.patient_client import Caller, PatientClient
from summary import tables

if TYPE_CHECKING:
    from medstation.summary.v1.summary_service_pb2_grpc import SummaryServiceAsyncStub

    WatchCall = grpc.aio.UnaryStreamCall[pb.WatchSummaryJobRequest, pb.SummaryJob]

BORN = "1961-07-04"
FIRST_VISIT = (
    datetime(2026, 3, 3, 9, 30, tzinfo=UTC),
    "S: Productive cough and fever for 4 days, right-sided chest pain on breathing.\n"
    "O: T 38.9 C, RR 24, SpO2 92% on room air, crackles at right base. "
    "Chest X-ray: right lower lobe consolidation.\n"
    "A: Community-acquired pneumonia, right lower lobe.\n"
    "P: Start amoxicillin 1 g three times daily. Paracetamol 1 g as needed for fever. "
    "Review in one week.",
)
SECOND_VISIT = (
    datetime(2026, 3, 10, 9, 0, tzinfo=UTC),
    "S: Cough improving, no fever for 48 hours.\n"
    "O: T 36.8 C, SpO2 97% on room air, crackles resolving at right base.\n"
    "A: Community-acquired pneumonia, improving.\n"
    "P: Complete amoxicillin 1 g three times daily for 7 days total. Follow up in 2 weeks.",
)
ENDED = ("SUCCEEDED", "FAILED")


def age_today(born: str = BORN) -> int:
    birth, today = datetime.fromisoformat(born).date(), datetime.now(UTC).date()
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


async def add_note(
    patients: PatientClient, caller: Caller, patient_id: str, note_time: datetime, content: str
) -> patient_pb.Note:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(note_time)
    request = patient_pb.CreateNoteRequest(patient_id=patient_id, content=content, note_time=stamp)
    return await patients.stub.CreateNote(request, metadata=caller.metadata)


async def pneumonia_patient(patients: PatientClient, caller: Caller) -> patient_pb.Patient:
    """A 2-visit chart: pneumonia diagnosed and treated with amoxicillin, then improving."""
    patient = await patients.create_patient(caller, date_of_birth=BORN, sex="female")
    for note_time, content in (FIRST_VISIT, SECOND_VISIT):
        await add_note(patients, caller, patient.id, note_time, content)
    return patient


async def create_job(
    summaries: SummaryServiceAsyncStub, caller: Caller, patient_id: str, request_id: str = ""
) -> pb.SummaryJob:
    request = pb.CreateSummaryJobRequest(patient_id=patient_id, request_id=request_id)
    return await summaries.CreateSummaryJob(request, metadata=caller.metadata)


async def job_state(
    summaries: SummaryServiceAsyncStub, caller: Caller, job_id: str
) -> pb.SummaryJob:
    request = pb.GetSummaryJobRequest(id=job_id)
    return await summaries.GetSummaryJob(request, metadata=caller.metadata)


async def until_state(
    summaries: SummaryServiceAsyncStub,
    caller: Caller,
    job_id: str,
    states: tuple[str, ...] = ENDED,
    *,
    within_seconds: float = 30.0,
) -> pb.SummaryJob:
    """The job once it reaches one of `states` (polled: this is what a client would do)."""
    async with asyncio.timeout(within_seconds):
        while True:
            job = await job_state(summaries, caller, job_id)
            if job.state in states:
                return job
            await asyncio.sleep(0.05)


async def next_update(call: WatchCall) -> pb.SummaryJob | None:
    """The stream's next message; None once it has ended (grpc.aio.EOF)."""
    update = await call.read()
    return update if isinstance(update, pb.SummaryJob) else None


async def read_all(call: WatchCall) -> list[pb.SummaryJob]:
    """The rest of a WatchSummaryJob stream, up to its end."""
    updates: list[pb.SummaryJob] = []
    while (update := await next_update(call)) is not None:
        updates.append(update)
    return updates


@contextlib.asynccontextmanager
async def summary_stub(port: int) -> AsyncIterator[SummaryServiceAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield summary_grpc.SummaryServiceStub(channel)


async def count_rows(engine: AsyncEngine, table: Any, **where: str) -> int:
    conditions = [table.c[column] == value for column, value in where.items()]
    async with engine.connect() as connection:
        return int(
            await connection.scalar(select(func.count()).select_from(table).where(*conditions)) or 0
        )


async def job_row(engine: AsyncEngine, job_id: str) -> Any:
    jobs = tables.summary_jobs
    async with engine.connect() as connection:
        return (await connection.execute(select(jobs).where(jobs.c.id == job_id))).one()
