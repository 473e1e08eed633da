"""The worker's side of a job: claimed once, run as its creator, ended once."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from medstation_llm.errors import ModelUnavailable
from medstation_platform.auth.principal import Principal
from services.summary.tests.unit.conftest import chart, person
from services.summary.tests.unit.fakes import (
    FakeDatabase,
    FakePatients,
    FakeQueue,
    FakeSummarizer,
    FixedClock,
)
from summary import use_cases
from summary.domain import JobState, PatientServiceUnavailable, SummaryJob
from summary.jobs import Outcome, process_job
from summary.use_cases import Policy, Summaries


async def _job(summaries: Summaries, patients: FakePatients, doctor: Principal) -> SummaryJob:
    record = chart("S: cough", "A: community-acquired pneumonia")
    patients.add(record, doctor.user_id)
    return await use_cases.create_summary_job(summaries, doctor, record.patient_id, request_id="")


async def _state(summaries: Summaries, doctor: Principal, job_id: str) -> SummaryJob:
    return await use_cases.get_summary_job(summaries, doctor, job_id)


async def test_a_job_runs_as_its_creator_and_succeeds_once(
    summaries: Summaries,
    patients: FakePatients,
    summarizer: FakeSummarizer,
    database: FakeDatabase,
    doctor: Principal,
) -> None:
    job = await _job(summaries, patients, doctor)
    assert await process_job(summaries, job.id) == Outcome.SUCCEEDED
    # Redelivered (the ack was lost, or the reconciler appended it twice): nothing happens.
    assert await process_job(summaries, job.id) == Outcome.SKIPPED
    done = await _state(summaries, doctor, job.id)
    assert (done.state, done.attempts, done.error) == (JobState.SUCCEEDED, 1, "")
    assert done.summary is not None
    assert done.summary.note_count == 2
    assert summarizer.calls == 1
    assert len(database.committed.summaries) == 1
    assert (doctor.token, job.patient_id) in patients.reads  # as the creator, by token
    assert database.row(job.id).sealed_credentials is None  # erased once the job ended


async def test_a_job_for_an_unchanged_chart_reuses_the_stored_summary(
    summaries: Summaries, patients: FakePatients, summarizer: FakeSummarizer, doctor: Principal
) -> None:
    job = await _job(summaries, patients, doctor)
    stored = await use_cases.get_summary(summaries, doctor, job.patient_id)
    await process_job(summaries, job.id)
    assert (await _state(summaries, doctor, job.id)).summary == stored
    assert summarizer.calls == 1


async def test_a_transient_failure_queues_the_job_again_behind_the_others(
    summaries: Summaries,
    patients: FakePatients,
    summarizer: FakeSummarizer,
    queue: FakeQueue,
    doctor: Principal,
) -> None:
    job = await _job(summaries, patients, doctor)
    other = await _job(summaries, patients, doctor)
    summarizer.failures = [ModelUnavailable()]
    assert await process_job(summaries, job.id) == Outcome.RETRYING
    again = await _state(summaries, doctor, job.id)
    assert (again.state, again.attempts) == (JobState.QUEUED, 1)
    assert queue.job_ids() == [job.id, other.id, job.id]
    assert await process_job(summaries, job.id) == Outcome.SUCCEEDED
    assert (await _state(summaries, doctor, job.id)).attempts == 2


async def test_a_job_that_keeps_failing_ends_failed_after_its_attempts(
    summaries: Summaries,
    patients: FakePatients,
    summarizer: FakeSummarizer,
    policy: Policy,
    doctor: Principal,
) -> None:
    job = await _job(summaries, patients, doctor)
    summarizer.failures = [ModelUnavailable() for _ in range(policy.job_max_attempts)]
    outcomes = [await process_job(summaries, job.id) for _ in range(policy.job_max_attempts + 1)]
    assert outcomes == [Outcome.RETRYING, Outcome.RETRYING, Outcome.FAILED, Outcome.SKIPPED]
    failed = await _state(summaries, doctor, job.id)
    assert failed.state == JobState.FAILED
    assert (
        failed.error == "gave up after 3 attempts: the language model is unavailable; retry later"
    )


async def test_a_job_that_outlives_its_timeout_fails(
    summaries: Summaries, patients: FakePatients, summarizer: FakeSummarizer, doctor: Principal
) -> None:
    quick = replace(summaries, policy=replace(summaries.policy, job_timeout_seconds=0.01))
    job = await _job(quick, patients, doctor)
    summarizer.delay_seconds = 1.0
    for _ in range(quick.policy.job_max_attempts):
        await process_job(quick, job.id)
    failed = await _state(quick, doctor, job.id)
    assert failed.state == JobState.FAILED
    assert failed.error == "gave up after 3 attempts: the summary was not written within 0.01 s"


async def test_expired_credentials_fail_the_job_at_once_with_a_clear_reason(
    summaries: Summaries, patients: FakePatients, summarizer: FakeSummarizer, doctor: Principal
) -> None:
    job = await _job(summaries, patients, doctor)
    patients.rejected_tokens.add(doctor.token)  # the access token expired while queued
    assert await process_job(summaries, job.id) == Outcome.FAILED
    patients.rejected_tokens.clear()  # the creator signed in again, and looks
    failed = await _state(summaries, doctor, job.id)
    assert failed.error.startswith("the request's credentials expired or were revoked")
    assert "submit the request again" in failed.error
    assert summarizer.calls == 0


async def test_a_creator_removed_from_the_care_team_gets_no_summary(
    summaries: Summaries, patients: FakePatients, doctor: Principal
) -> None:
    job = await _job(summaries, patients, doctor)
    patients.care_teams[job.patient_id].clear()
    assert await process_job(summaries, job.id) == Outcome.FAILED
    assert (await _state(summaries, person("admin"), job.id)).error == "patient not found"


async def test_a_worker_whose_claim_was_taken_over_cannot_end_the_job(
    summaries: Summaries,
    patients: FakePatients,
    summarizer: FakeSummarizer,
    database: FakeDatabase,
    clock: FixedClock,
    doctor: Principal,
) -> None:
    job = await _job(summaries, patients, doctor)
    # The first worker stalls on the patient service past its lease...
    patients.failures = [PatientServiceUnavailable()]
    slow = database.unit_of_work
    async with slow() as uow:
        first = await uow.jobs.claim(
            job.id, now=clock(), lease_until=clock() + timedelta(seconds=30), max_attempts=3
        )
        await uow.commit()
    assert first is not None
    clock.advance(timedelta(seconds=31))
    # ...another takes the job over and finishes it...
    patients.failures = []
    assert await process_job(summaries, job.id) == Outcome.SUCCEEDED
    # ...and the first one's late writes change nothing.
    async with slow() as uow:
        assert not await uow.jobs.succeed(job.id, first.attempt, summary_id="x", now=clock())
        assert not await uow.jobs.requeue(job.id, first.attempt, now=clock())
    done = await _state(summaries, doctor, job.id)
    assert (done.state, done.attempts) == (JobState.SUCCEEDED, 2)
