"""No accepted job is lost: the reconciler finds jobs of dead workers and jobs the stream
never got or forgot, and puts them back on the stream."""

from __future__ import annotations

from datetime import timedelta

from medstation_platform.auth.principal import Principal
from services.summary.tests.unit.conftest import chart
from services.summary.tests.unit.fakes import FakeDatabase, FakePatients, FakeQueue, FixedClock
from summary import use_cases
from summary.domain import JobState, SummaryJob
from summary.jobs import Outcome, Reconciled, process_job, reconcile
from summary.use_cases import Summaries

LEASE = timedelta(seconds=30)
REQUEUE_AFTER = timedelta(seconds=30)


async def _job(summaries: Summaries, patients: FakePatients, doctor: Principal) -> SummaryJob:
    record = chart("S: cough")
    patients.add(record, doctor.user_id)
    return await use_cases.create_summary_job(summaries, doctor, record.patient_id, request_id="")


async def _abandoned(summaries: Summaries, database: FakeDatabase, job: SummaryJob) -> int:
    """A worker claims the job and dies at once; the claim's attempt number."""
    async with database.unit_of_work() as uow:
        now = summaries.clock()
        claimed = await uow.jobs.claim(job.id, now=now, lease_until=now + LEASE, max_attempts=3)
        await uow.commit()
    assert claimed is not None
    return claimed.attempt


async def test_a_dead_workers_job_is_queued_again_once_its_lease_lapses(
    summaries: Summaries,
    patients: FakePatients,
    database: FakeDatabase,
    queue: FakeQueue,
    clock: FixedClock,
    doctor: Principal,
) -> None:
    job = await _job(summaries, patients, doctor)
    await _abandoned(summaries, database, job)
    assert await reconcile(summaries) == Reconciled(0, 0, 0)  # the lease still runs
    clock.advance(LEASE + timedelta(seconds=1))
    assert await reconcile(summaries) == Reconciled(requeued=1, failed=0, enqueued=0)
    assert database.row(job.id).job.state == JobState.QUEUED
    assert queue.job_ids() == [job.id, job.id]
    assert await process_job(summaries, job.id) == Outcome.SUCCEEDED


async def test_a_dead_workers_last_attempt_fails_the_job(
    summaries: Summaries,
    patients: FakePatients,
    database: FakeDatabase,
    clock: FixedClock,
    doctor: Principal,
) -> None:
    job = await _job(summaries, patients, doctor)
    for _ in range(summaries.policy.job_max_attempts):
        await _abandoned(summaries, database, job)
        clock.advance(LEASE + timedelta(seconds=1))
        await reconcile(summaries)
    failed = database.row(job.id).job
    assert (failed.state, failed.attempts) == (JobState.FAILED, 3)
    assert failed.error == "gave up after 3 attempts: the worker running the job stopped responding"
    assert database.row(job.id).sealed_credentials is None


async def test_jobs_the_stream_lost_are_appended_again(
    summaries: Summaries,
    patients: FakePatients,
    queue: FakeQueue,
    clock: FixedClock,
    doctor: Principal,
) -> None:
    kept = await _job(summaries, patients, doctor)
    lost = await _job(summaries, patients, doctor)
    queue.down = True
    never_sent = await _job(summaries, patients, doctor)
    queue.down = False
    del queue.entries[next(k for k, (job_id, _) in queue.entries.items() if job_id == lost.id)]
    assert (await reconcile(summaries)).enqueued == 0  # not yet overdue
    clock.advance(REQUEUE_AFTER + timedelta(seconds=1))
    assert (await reconcile(summaries)).enqueued == 2
    assert sorted(queue.job_ids()) == sorted([kept.id, lost.id, never_sent.id])
    assert (await reconcile(summaries)).enqueued == 0  # checked just now


async def test_while_the_stream_is_down_the_jobs_wait_in_the_database(
    summaries: Summaries,
    patients: FakePatients,
    queue: FakeQueue,
    clock: FixedClock,
    doctor: Principal,
) -> None:
    queue.down = True
    job = await _job(summaries, patients, doctor)
    clock.advance(REQUEUE_AFTER + timedelta(seconds=1))
    assert await reconcile(summaries) == Reconciled(0, 0, 0)
    queue.down = False
    queue.wipe()  # Redis came back empty
    clock.advance(REQUEUE_AFTER + timedelta(seconds=1))
    assert (await reconcile(summaries)).enqueued == 1
    assert queue.job_ids() == [job.id]
