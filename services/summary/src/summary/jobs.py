"""What the worker does with a summary job: claim it, write the summary as its creator,
and end it once — whatever the redeliveries, crashes and retries.

The job row in PostgreSQL is the state of record; the stream only says "look at job X".
A delivery claims the row with a conditional UPDATE (QUEUED → RUNNING, one more attempt,
a lease the worker keeps renewing); every later write is conditional on that claim, so a
worker whose lease lapsed and was taken over cannot end the job a second time. Jobs lost
from the stream or held by dead workers are found again by `reconcile`.

The worker reads the chart as the job's creator, with the access token the job was
created with (see `summary.credentials` for why, and what happens when it expires).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from medstation_platform import errors
from medstation_platform.auth.principal import Principal
from summary.domain import (
    LEASE_LAPSED,
    ClaimedJob,
    CredentialsUnreadable,
    JobState,
    JobTimedOut,
    QueuedJob,
    Summary,
    attempts_exhausted,
    failure_message,
    is_permanent,
)
from summary.ports import QueueUnavailable
from summary.use_cases import Summaries, enqueue, summary_of

logger = logging.getLogger(__name__)

_SMALLEST_TIMEOUT = 0.001


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRYING = "retrying"  # failed this attempt, queued for another
    SKIPPED = "skipped"  # nothing to do: ended, held by a live worker, or purged
    LOST = "lost"  # the claim lapsed and another worker took the job over


async def process_job(summaries: Summaries, job_id: str) -> Outcome:
    """One delivery of the job. Returns once the outcome is committed: only then may the
    stream entry be acknowledged."""
    claimed = await _claim(summaries, job_id)
    if claimed is None:
        return await _unclaimable(summaries, job_id)
    timeout = summaries.policy.job_timeout_seconds
    deadline = time.monotonic() + timeout
    try:
        async with asyncio.timeout(timeout), _renewing(summaries, claimed):
            summary = await _summarize_for_creator(summaries, claimed, deadline)
    except TimeoutError:
        return await _failed(summaries, claimed, JobTimedOut(timeout))
    except Exception as error:
        return await _failed(summaries, claimed, error)
    return await _succeeded(summaries, claimed, summary)


async def _claim(summaries: Summaries, job_id: str) -> ClaimedJob | None:
    now = summaries.clock()
    lease_until = now + timedelta(seconds=summaries.policy.job_lease_seconds)
    # Each of a job's state changes is one statement: it commits on its own, with no
    # BEGIN and COMMIT round trips (UnitOfWork.autocommit).
    async with summaries.unit_of_work().autocommit() as uow:
        claimed = await uow.jobs.claim(
            job_id, now=now, lease_until=lease_until, max_attempts=summaries.policy.job_max_attempts
        )
        await uow.commit()
    return claimed


async def _unclaimable(summaries: Summaries, job_id: str) -> Outcome:
    """A QUEUED job already out of attempts (the limit was lowered) ends here; anything
    else unclaimable is someone else's business or already over."""
    max_attempts = summaries.policy.job_max_attempts
    async with summaries.unit_of_work() as uow:
        job = await uow.jobs.get(job_id)
        if job is None or job.state != JobState.QUEUED or job.attempts < max_attempts:
            return Outcome.SKIPPED
        error = attempts_exhausted(job.attempts, "no attempts left")
        failed = await uow.jobs.fail(
            job.id, job.attempts, error=error, now=summaries.clock(), state=JobState.QUEUED
        )
        await uow.commit()
    return Outcome.FAILED if failed else Outcome.SKIPPED


async def _summarize_for_creator(
    summaries: Summaries, claimed: ClaimedJob, deadline: float
) -> Summary:
    job = claimed.job
    if claimed.sealed_credentials is None:
        raise CredentialsUnreadable()
    token = summaries.sealer.unseal(claimed.sealed_credentials, job_id=job.id)
    # The creator as they were when they asked; the patient-record service checks the
    # token again, so a creator since removed from the care team is refused there.
    creator = Principal(user_id=job.creator_id, role=job.creator_role, session_id="", token=token)

    def budget(default: float) -> float:
        return max(min(default, deadline - time.monotonic()), _SMALLEST_TIMEOUT)

    timeout = budget(summaries.policy.patient_timeout_seconds)
    chart = await summaries.patients.chart(creator, job.patient_id, timeout_seconds=timeout)
    return await summary_of(summaries, chart, budget)


async def _succeeded(summaries: Summaries, claimed: ClaimedJob, summary: Summary) -> Outcome:
    async with summaries.unit_of_work().autocommit() as uow:
        done = await uow.jobs.succeed(
            claimed.job.id, claimed.attempt, summary_id=summary.id, now=summaries.clock()
        )
        await uow.commit()
    return Outcome.SUCCEEDED if done else Outcome.LOST


async def _failed(summaries: Summaries, claimed: ClaimedJob, error: Exception) -> Outcome:
    job, attempt = claimed.job, claimed.attempt
    message = failure_message(error)
    permanent = is_permanent(error)
    logger.warning(
        "summary job attempt failed: %s",
        message,
        # The traceback only for what is not a known failure (a bug, an outage).
        exc_info=None if isinstance(error, errors.DomainError) else error,
        extra={"job": job.id, "attempt": attempt, "permanent": permanent},
    )
    now = summaries.clock()
    async with summaries.unit_of_work() as uow:
        if permanent or attempt >= summaries.policy.job_max_attempts:
            final = message if permanent else attempts_exhausted(attempt, message)
            ended = await uow.jobs.fail(
                job.id, attempt, error=final, now=now, state=JobState.RUNNING
            )
            await uow.commit()
            return Outcome.FAILED if ended else Outcome.LOST
        requeued = await uow.jobs.requeue(job.id, attempt, now=now)
        await uow.commit()
    if not requeued:
        return Outcome.LOST
    # To the back of the stream: a job that keeps failing never holds up the others.
    await enqueue(summaries, QueuedJob(job.id, claimed.trace_context))
    return Outcome.RETRYING


@contextlib.asynccontextmanager
async def _renewing(summaries: Summaries, claimed: ClaimedJob) -> AsyncIterator[None]:
    """Keeps the claim's lease fresh while the job runs: a live worker keeps its job, a
    dead one's lease lapses and the reconciler queues the job again."""
    task = asyncio.create_task(_renew_until_cancelled(summaries, claimed))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _renew_until_cancelled(summaries: Summaries, claimed: ClaimedJob) -> None:
    lease = summaries.policy.job_lease_seconds
    while True:
        await asyncio.sleep(lease / 3)
        lease_until = summaries.clock() + timedelta(seconds=lease)
        try:
            async with summaries.unit_of_work().autocommit() as uow:
                held = await uow.jobs.renew(
                    claimed.job.id, claimed.attempt, lease_until=lease_until
                )
                await uow.commit()
        except Exception:
            # PostgreSQL away: try again at the next beat; the lease still has two left.
            logger.warning("lease renewal failed", exc_info=True, extra={"job": claimed.job.id})
            continue
        if not held:
            logger.warning("job claim lost to another worker", extra={"job": claimed.job.id})
            return


# ---- the reconciler ----


@dataclass(frozen=True)
class Reconciled:
    requeued: int  # RUNNING jobs whose worker died, queued again
    failed: int  # ... or failed, being out of attempts
    enqueued: int  # QUEUED jobs the stream had lost (or never got), appended again


async def reconcile(summaries: Summaries, *, limit: int = 100) -> Reconciled:
    """One pass: no accepted job is left behind by a dead worker or a lost stream.

    Raises when PostgreSQL fails; Redis failing only postpones the appends.
    """
    requeued, failed = await _recover_lapsed(summaries, limit)
    for job in requeued:
        await enqueue(summaries, job)
    enqueued = await _enqueue_lost(summaries, limit)
    return Reconciled(len(requeued), failed, enqueued)


async def _recover_lapsed(summaries: Summaries, limit: int) -> tuple[list[QueuedJob], int]:
    now = summaries.clock()
    requeued: list[QueuedJob] = []
    failed = 0
    async with summaries.unit_of_work() as uow:
        for claimed in await uow.jobs.lapsed(now=now, limit=limit):
            job, attempt = claimed.job, claimed.attempt
            if attempt >= summaries.policy.job_max_attempts:
                error = attempts_exhausted(attempt, LEASE_LAPSED)
                failed += await uow.jobs.fail(
                    job.id, attempt, error=error, now=now, state=JobState.RUNNING
                )
            elif await uow.jobs.requeue(job.id, attempt, now=now):
                requeued.append(QueuedJob(job.id, claimed.trace_context))
        await uow.commit()
    return requeued, failed


async def _enqueue_lost(summaries: Summaries, limit: int) -> int:
    now = summaries.clock()
    waited = timedelta(seconds=summaries.policy.requeue_after_seconds)
    async with summaries.unit_of_work() as uow:
        due = await uow.jobs.due_for_enqueue(now=now, enqueued_before=now - waited, limit=limit)
        await uow.commit()
    if not due:
        return 0
    entry_ids = [job.stream_entry_id for job in due if job.stream_entry_id]
    try:
        present = await summaries.queue.present(entry_ids) if entry_ids else set()
    except QueueUnavailable as error:
        logger.warning("job stream unavailable; lost jobs wait for the next pass: %s", error)
        return 0
    lost = [job for job in due if job.stream_entry_id not in present]
    return sum([await enqueue(summaries, job) for job in lost])
