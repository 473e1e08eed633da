"""Only the patient's care team (and admins) get anything; everyone else gets NOT_FOUND,
exactly as if the patient or job did not exist. Malformed input names its field."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import grpc

from devstack.rpc_failures import failure
from medstation.summary.v1 import summary_service_pb2 as pb
from services.patient_record.tests.integration.patient_client import (
    UNKNOWN_ID,
    Caller,
    PatientClient,
)
from services.summary.tests.integration.conftest import StartWorker
from services.summary.tests.integration.summary_client import (
    create_job,
    next_update,
    pneumonia_patient,
    until_state,
)

if TYPE_CHECKING:
    from medstation.summary.v1.summary_service_pb2_grpc import SummaryServiceAsyncStub


def _patient_calls(
    summaries: SummaryServiceAsyncStub, caller: Caller, patient_id: str
) -> list[Awaitable[object]]:
    return [
        summaries.GetSummary(pb.GetSummaryRequest(patient_id=patient_id), metadata=caller.metadata),
        summaries.ListSummaries(
            pb.ListSummariesRequest(patient_id=patient_id), metadata=caller.metadata
        ),
        create_job(summaries, caller, patient_id),
    ]


async def _job_calls_fail(summaries: SummaryServiceAsyncStub, caller: Caller, job_id: str) -> None:
    got = await failure(
        summaries.GetSummaryJob(pb.GetSummaryJobRequest(id=job_id), metadata=caller.metadata)
    )
    assert (got.code, got.reason) == (grpc.StatusCode.NOT_FOUND, "SUMMARY_JOB_NOT_FOUND")
    watch = summaries.WatchSummaryJob(
        pb.WatchSummaryJobRequest(id=job_id), metadata=caller.metadata
    )
    watched = await failure(next_update(watch))
    assert (watched.code, watched.reason) == (grpc.StatusCode.NOT_FOUND, "SUMMARY_JOB_NOT_FOUND")


async def test_outsiders_get_not_found_for_the_patient_and_its_jobs(
    patients: PatientClient, summaries: SummaryServiceAsyncStub, start_worker: StartWorker
) -> None:
    await start_worker()
    doctor, outsider, admin = patients.clinician(), patients.clinician(), patients.admin()
    patient = await pneumonia_patient(patients, doctor)
    job = await create_job(summaries, doctor, patient.id)
    await until_state(summaries, doctor, job.id)
    for call in _patient_calls(summaries, outsider, patient.id):
        failed = await failure(call)
        assert (failed.code, failed.reason) == (grpc.StatusCode.NOT_FOUND, "PATIENT_NOT_FOUND")
    for call in _patient_calls(summaries, outsider, UNKNOWN_ID):
        assert (await failure(call)).reason == "PATIENT_NOT_FOUND"
    await _job_calls_fail(summaries, outsider, job.id)
    await _job_calls_fail(summaries, doctor, str(uuid.uuid4()))
    # Admins see every patient; a colleague once added to the care team does too.
    assert (await until_state(summaries, admin, job.id)).state == "SUCCEEDED"
    colleague = patients.clinician()
    await patients.add_member(doctor, patient.id, colleague.user_id)
    summary = await summaries.GetSummary(
        pb.GetSummaryRequest(patient_id=patient.id), metadata=colleague.metadata
    )
    assert summary.id == (await until_state(summaries, colleague, job.id)).summary.id


async def test_malformed_ids_are_refused_naming_the_field(
    summaries: SummaryServiceAsyncStub, patients: PatientClient
) -> None:
    doctor = patients.clinician()
    calls: dict[str, Awaitable[object]] = {
        "patient_id": summaries.GetSummary(
            pb.GetSummaryRequest(patient_id="not-a-uuid"), metadata=doctor.metadata
        ),
        "request_id": summaries.CreateSummaryJob(
            pb.CreateSummaryJobRequest(patient_id=UNKNOWN_ID, request_id="again"),
            metadata=doctor.metadata,
        ),
        "id": summaries.GetSummaryJob(pb.GetSummaryJobRequest(id="42"), metadata=doctor.metadata),
        "page_size": summaries.ListSummaries(
            pb.ListSummariesRequest(patient_id=UNKNOWN_ID, page_size=-1), metadata=doctor.metadata
        ),
    }
    for field, call in calls.items():
        failed = await failure(call)
        assert (failed.code, failed.fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field])


async def test_every_call_needs_an_access_token(summaries: SummaryServiceAsyncStub) -> None:
    failed = await failure(summaries.GetSummary(pb.GetSummaryRequest(patient_id=UNKNOWN_ID)))
    assert (failed.code, failed.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
