"""CreateSummaryJob, GetSummaryJob and WatchSummaryJob, as callers see them."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from medstation_platform.auth.principal import Principal
from services.summary.tests.unit.conftest import TRACEPARENT, chart, person
from services.summary.tests.unit.fakes import FakeDatabase, FakePatients, FakeQueue
from summary import use_cases
from summary.domain import (
    JobState,
    PatientNotFound,
    RequestIdReused,
    SummaryJob,
    SummaryJobNotFound,
)
from summary.jobs import process_job
from summary.use_cases import Summaries


async def _job(summaries: Summaries, patients: FakePatients, doctor: Principal) -> SummaryJob:
    record = chart("S: cough")
    patients.add(record, doctor.user_id)
    return await use_cases.create_summary_job(summaries, doctor, record.patient_id, request_id="")


async def test_a_job_is_queued_at_once_and_announced_with_its_trace(
    summaries: Summaries, patients: FakePatients, queue: FakeQueue, doctor: Principal
) -> None:
    job = await _job(summaries, patients, doctor)
    assert (job.state, job.summary, job.error, job.creator_id) == (
        JobState.QUEUED,
        None,
        "",
        doctor.user_id,
    )
    [(job_id, trace)] = queue.entries.values()
    assert (job_id, trace) == (job.id, {"traceparent": TRACEPARENT})


async def test_the_creators_token_is_kept_sealed_for_the_worker(
    summaries: Summaries, patients: FakePatients, database: FakeDatabase, doctor: Principal
) -> None:
    job = await _job(summaries, patients, doctor)
    sealed = database.row(job.id).sealed_credentials
    assert sealed is not None
    assert doctor.token.encode() not in sealed
    assert summaries.sealer.unseal(sealed, job_id=job.id) == doctor.token


async def test_a_repeated_request_id_returns_the_first_job(
    summaries: Summaries, patients: FakePatients, queue: FakeQueue, doctor: Principal
) -> None:
    record = chart("S: cough")
    patients.add(record, doctor.user_id)
    request_id = str(uuid.uuid4())
    first = await use_cases.create_summary_job(
        summaries, doctor, record.patient_id, request_id=request_id
    )
    again = await use_cases.create_summary_job(
        summaries, doctor, record.patient_id, request_id=request_id
    )
    assert again == first
    assert queue.job_ids() == [first.id]


async def test_a_request_id_is_not_reused_for_another_patient(
    summaries: Summaries, patients: FakePatients, doctor: Principal
) -> None:
    one, two = chart("S: cough"), chart("S: fever")
    patients.add(one, doctor.user_id)
    patients.add(two, doctor.user_id)
    request_id = str(uuid.uuid4())
    await use_cases.create_summary_job(summaries, doctor, one.patient_id, request_id=request_id)
    with pytest.raises(RequestIdReused) as refused:
        await use_cases.create_summary_job(summaries, doctor, two.patient_id, request_id=request_id)
    assert [violation.field for violation in refused.value.violations] == ["request_id"]


async def test_request_ids_belong_to_their_caller(
    summaries: Summaries, patients: FakePatients, doctor: Principal
) -> None:
    colleague = person()
    record = chart("S: cough")
    patients.add(record, doctor.user_id, colleague.user_id)
    request_id = str(uuid.uuid4())
    mine = await use_cases.create_summary_job(
        summaries, doctor, record.patient_id, request_id=request_id
    )
    theirs = await use_cases.create_summary_job(
        summaries, colleague, record.patient_id, request_id=request_id
    )
    assert mine.id != theirs.id


async def test_a_job_is_accepted_while_the_stream_is_down(
    summaries: Summaries, patients: FakePatients, queue: FakeQueue, doctor: Principal
) -> None:
    queue.down = True
    job = await _job(summaries, patients, doctor)
    assert job.state == JobState.QUEUED
    assert (await use_cases.get_summary_job(summaries, doctor, job.id)) == job


async def test_outsiders_can_neither_create_nor_see_jobs(
    summaries: Summaries, patients: FakePatients, doctor: Principal, outsider: Principal
) -> None:
    job = await _job(summaries, patients, doctor)
    with pytest.raises(PatientNotFound):
        await use_cases.create_summary_job(summaries, outsider, job.patient_id, request_id="")
    with pytest.raises(SummaryJobNotFound):
        await use_cases.get_summary_job(summaries, outsider, job.id)
    watch = use_cases.watch_summary_job(summaries, outsider, job.id)
    with pytest.raises(SummaryJobNotFound):
        await anext(watch)
    with pytest.raises(SummaryJobNotFound):
        await use_cases.get_summary_job(summaries, doctor, str(uuid.uuid4()))


async def test_watching_streams_each_change_until_the_job_ends(
    summaries: Summaries, patients: FakePatients, doctor: Principal
) -> None:
    job = await _job(summaries, patients, doctor)
    seen: list[SummaryJob] = []
    first_seen = asyncio.Event()

    async def watch() -> None:
        async for version in use_cases.watch_summary_job(summaries, doctor, job.id):
            seen.append(version)
            first_seen.set()

    watching = asyncio.create_task(watch())
    await first_seen.wait()
    await process_job(summaries, job.id)
    await asyncio.wait_for(watching, timeout=5)
    assert seen[0].state == JobState.QUEUED
    assert seen[-1].state == JobState.SUCCEEDED
    assert seen[-1].summary is not None
    assert [version.state for version in seen].count(JobState.SUCCEEDED) == 1
