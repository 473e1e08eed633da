"""Summary jobs end to end: queued at once, run by a worker, watched until they end."""

from __future__ import annotations

import secrets
import uuid
from typing import TYPE_CHECKING

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.rpc_failures import failure
from medstation.summary.v1 import summary_service_pb2 as pb
from medstation.summary.v1 import summary_service_pb2_grpc as summary_grpc
from services.patient_record.tests.integration.patient_client import PatientClient
from services.summary.tests.integration.conftest import ServeSummary, StartWorker
from services.summary.tests.integration.summary_client import (
    count_rows,
    create_job,
    job_row,
    next_update,
    pneumonia_patient,
    read_all,
    until_state,
)
from summary import tables
from summary.settings import SummarySettings

if TYPE_CHECKING:
    from medstation.summary.v1.summary_service_pb2_grpc import SummaryServiceAsyncStub


async def test_a_job_is_queued_at_once_and_its_summary_watched_until_done(
    patients: PatientClient,
    summaries: SummaryServiceAsyncStub,
    start_worker: StartWorker,
    engine: AsyncEngine,
) -> None:
    doctor = patients.clinician()
    patient = await pneumonia_patient(patients, doctor)
    job = await create_job(summaries, doctor, patient.id)
    assert (job.state, job.patient_id, job.HasField("summary"), job.error) == (
        "QUEUED",
        patient.id,
        False,
        "",
    )
    watch = summaries.WatchSummaryJob(
        pb.WatchSummaryJobRequest(id=job.id), metadata=doctor.metadata, timeout=30
    )
    first = await next_update(watch)
    assert first is not None
    assert (first.id, first.state) == (job.id, "QUEUED")
    await start_worker()
    updates = await read_all(watch)
    states = [update.state for update in updates]
    assert states[-1] == "SUCCEEDED"
    assert states.count("SUCCEEDED") == 1
    done = updates[-1]
    assert "amoxicillin" in done.summary.text
    assert (done.summary.patient_id, done.summary.note_count) == (patient.id, 2)
    assert done.updated_at.ToDatetime() >= done.created_at.ToDatetime()
    row = await job_row(engine, job.id)
    assert (row.attempts, row.sealed_credentials) == (1, None)  # the token is gone
    # The job and GetSummary share the one summary of this chart.
    summary = await summaries.GetSummary(
        pb.GetSummaryRequest(patient_id=patient.id), metadata=doctor.metadata
    )
    assert summary == done.summary
    assert await count_rows(engine, tables.summaries, patient_id=patient.id) == 1


async def test_a_repeated_request_id_returns_the_first_job(
    patients: PatientClient, summaries: SummaryServiceAsyncStub, engine: AsyncEngine
) -> None:
    doctor = patients.clinician()
    patient = await pneumonia_patient(patients, doctor)
    other = await pneumonia_patient(patients, doctor)
    request_id = str(uuid.uuid4())
    first = await create_job(summaries, doctor, patient.id, request_id)
    again = await create_job(summaries, doctor, patient.id, request_id)
    assert again == first
    assert await count_rows(engine, tables.summary_jobs, patient_id=patient.id) == 1
    refused = await failure(create_job(summaries, doctor, other.id, request_id))
    assert (refused.code, refused.reason, refused.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "IDEMPOTENCY_KEY_REUSED",
        ["request_id"],
    )
    # Another caller's request ids are their own.
    colleague = patients.clinician()
    await patients.add_member(doctor, patient.id, colleague.user_id)
    theirs = await create_job(summaries, colleague, patient.id, request_id)
    assert theirs.id != first.id


async def test_a_job_without_notes_fails_with_a_reason_to_show(
    patients: PatientClient, summaries: SummaryServiceAsyncStub, start_worker: StartWorker
) -> None:
    await start_worker()
    doctor = patients.clinician()
    patient = await patients.create_patient(doctor)
    job = await create_job(summaries, doctor, patient.id)
    failed = await until_state(summaries, doctor, job.id)
    assert (failed.state, failed.error) == ("FAILED", "the patient has no notes to summarize")
    assert not failed.HasField("summary")


async def test_watching_ends_with_the_callers_deadline(
    patients: PatientClient, summaries: SummaryServiceAsyncStub
) -> None:
    doctor = patients.clinician()
    patient = await pneumonia_patient(patients, doctor)
    job = await create_job(summaries, doctor, patient.id)  # no worker: it stays QUEUED
    watch = summaries.WatchSummaryJob(
        pb.WatchSummaryJobRequest(id=job.id), metadata=doctor.metadata, timeout=0.5
    )
    assert (await next_update(watch)) is not None
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await next_update(watch)
    assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_the_worker_joins_the_trace_of_the_request_that_queued_the_job(
    patients: PatientClient,
    serve_summary: ServeSummary,
    settings: SummarySettings,
    start_worker: StartWorker,
) -> None:
    # The pipeline continues the caller's trace; the job carries it to the worker.
    running = await serve_summary(settings)
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    await start_worker(tracer=provider.get_tracer("summary.worker"))
    trace_id = secrets.token_hex(16)
    traceparent = (("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01"),)
    doctor = patients.clinician()
    patient = await pneumonia_patient(patients, doctor)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = summary_grpc.SummaryServiceStub(channel)
        job = await stub.CreateSummaryJob(
            pb.CreateSummaryJobRequest(patient_id=patient.id),
            metadata=doctor.metadata + traceparent,
        )
        assert (await until_state(stub, doctor, job.id)).state == "SUCCEEDED"
    # Jobs earlier tests left queued in the shared database may be run here too.
    [job_span] = [
        span
        for span in spans.get_finished_spans()
        if (span.attributes or {}).get("medstation.summary_job.id") == job.id
    ]
    assert job_span.context is not None
    assert format(job_span.context.trace_id, "032x") == trace_id
    assert job_span.parent is not None  # a child of the request's server span
    assert job_span.attributes is not None
    assert job_span.attributes["medstation.summary_job.outcome"] == "succeeded"
