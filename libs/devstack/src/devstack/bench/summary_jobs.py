"""Summary jobs end to end: K jobs queued at once, measured until every one has ended.

Each job is for a different patient whose chart has no stored summary (bench.summary_data
makes them fresh), so every job fetches a chart and has the offline model write. The
times come from the jobs themselves (created_at, and updated_at of the final state, both
stamped by the summary service and its workers on this machine), so the poll interval
does not blur them: throughput is the jobs that succeeded over the span from the first
job's creation to the last one's end; latency is each job's own creation-to-end time.

Completion is polled with GetSummaryJob, oldest unfinished job first and only up to the
first that is still running, so the polling adds about one call per job, not one per job
per round. The whole wait is bounded. Run with the stack's worker(s), then with extra
workers started for the measurement (bench.extra_worker).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc.aio
from google.protobuf.timestamp_pb2 import Timestamp

from devstack.api_session import ApiSession
from devstack.bench import cpu, cpu_groups
from devstack.bench.extra_worker import ExtraWorker, WorkerUnavailable
from devstack.bench.latency import LatencyHistogram
from devstack.bench.summary_data import FreshPatients
from medstation.summary.v1 import summary_service_pb2 as summary_pb
from medstation.summary.v1 import summary_service_pb2_grpc as summary_grpc

TITLE = "Summary jobs (end to end)"
WORKERS = "workers"
JOB_CPU_GROUPS = (
    WORKERS,
    cpu_groups.SERVICE,
    cpu_groups.OTHERS,
    cpu_groups.POSTGRES,
    cpu_groups.REDIS,
    cpu_groups.LOAD_GENERATOR,
)
_ENDED = {"SUCCEEDED", "FAILED"}
_CREATE_CONCURRENCY = 16
_POLL_SECONDS = 0.2
_CALL_TIMEOUT_SECONDS = 10.0
# The wait for all jobs of a batch: a base plus a generous time per job.
_WAIT_BASE_SECONDS = 60.0
_WAIT_PER_JOB_SECONDS = 1.0


@dataclass(frozen=True)
class JobsResult:
    workers: int
    jobs: int
    succeeded: int
    failed: int
    unfinished: int  # not ended when the wait gave up
    seconds: float | None  # first creation to last end, of the jobs that ended
    p50_seconds: float | None
    p99_seconds: float | None
    cpu_seconds: dict[str, float]

    @property
    def jobs_per_second(self) -> float | None:
        return self.succeeded / self.seconds if self.seconds else None

    def cpu_ms_per_job(self, group: str) -> float | None:
        if not self.succeeded or group not in self.cpu_seconds:
            return None
        return self.cpu_seconds[group] * 1e3 / self.succeeded


@dataclass(frozen=True)
class JobsSetup:
    summaries: summary_grpc.SummaryServiceAsyncStub
    session: ApiSession
    fresh: FreshPatients
    summary_addr: str
    worker_addr: str  # the stack's own worker (its gRPC health port)
    other_addrs: tuple[str, ...]  # services the jobs call (patient-record)
    redis_url: str
    workdir: Path


async def measure_jobs(
    setup: JobsSetup,
    worker_counts: Sequence[int],
    count: int,
    *,
    log: Callable[[str], None],
    skipped: list[str],
) -> list[JobsResult]:
    """A row per worker count; a count that needs workers we cannot start is skipped."""
    results = []
    count = min(count, setup.fresh.pool_size)  # distinct patients in each batch
    try:
        for workers in worker_counts:
            extra: list[ExtraWorker] = []
            try:
                for index in range(workers - 1):
                    log_path = setup.workdir / f"summary-worker-{workers}-{index}.log"
                    extra.append(await ExtraWorker.start(setup.worker_addr, log_path))
                result = await _measure(setup, workers, count, [w.address for w in extra])
            except WorkerUnavailable as error:
                skipped.append(f"{TITLE} with {workers} workers: {error}")
                continue
            finally:
                for worker in extra:
                    await worker.stop()
            log(_line(result))
            results.append(result)
    finally:
        await setup.fresh.restore()
    return results


async def _measure(
    setup: JobsSetup, workers: int, count: int, extra_addrs: Sequence[str]
) -> JobsResult:
    patients = await setup.fresh.batch(count)
    meter = cpu.CpuMeter(
        cpu_groups.readers(
            {
                WORKERS: [cpu_groups.address_port(a) for a in (setup.worker_addr, *extra_addrs)],
                cpu_groups.SERVICE: [cpu_groups.address_port(setup.summary_addr)],
                cpu_groups.OTHERS: [cpu_groups.address_port(a) for a in setup.other_addrs],
                cpu_groups.REDIS: [cpu_groups.port_of(setup.redis_url, 6379)],
            }
        )
    )
    before = meter.snapshot()
    job_ids = await _create(setup, patients)
    jobs = await _wait(setup, job_ids, _WAIT_BASE_SECONDS + _WAIT_PER_JOB_SECONDS * count)
    after = meter.snapshot()
    spent = cpu.CpuMeter.spent(before, after)
    return tally_jobs(workers, len(patients), len(job_ids), jobs, spent)


async def _create(setup: JobsSetup, patients: Sequence[str]) -> list[str]:
    """The ids of the jobs created; a refused creation is left out (counted as failed)."""
    queue = list(reversed(patients))
    job_ids: list[str] = []

    async def creator() -> None:
        while queue:
            patient_id = queue.pop()
            try:
                job = await setup.summaries.CreateSummaryJob(
                    summary_pb.CreateSummaryJobRequest(patient_id=patient_id),
                    metadata=await setup.session.metadata(),
                    timeout=_CALL_TIMEOUT_SECONDS,
                )
            except grpc.aio.AioRpcError:
                continue
            job_ids.append(job.id)

    await asyncio.gather(*(creator() for _ in range(min(_CREATE_CONCURRENCY, len(patients)))))
    return job_ids


async def _wait(
    setup: JobsSetup, job_ids: Sequence[str], limit_seconds: float
) -> dict[str, summary_pb.SummaryJob]:
    """The jobs as last read; those ended, or all of them once `limit_seconds` passed."""
    pending = list(job_ids)  # creation order: roughly the order they end in
    seen: dict[str, summary_pb.SummaryJob] = {}
    give_up_at = time.monotonic() + limit_seconds
    while pending and time.monotonic() < give_up_at:
        still = []
        for index, job_id in enumerate(pending):
            try:
                job = await setup.summaries.GetSummaryJob(
                    summary_pb.GetSummaryJobRequest(id=job_id),
                    metadata=await setup.session.metadata(),
                    timeout=_CALL_TIMEOUT_SECONDS,
                )
            except grpc.aio.AioRpcError:
                still.append(job_id)  # asked again next round
                continue
            seen[job_id] = job
            if job.state not in _ENDED:
                still += pending[index:]  # the rest ends later still, most likely
                break
        pending = still
        if pending:
            await asyncio.sleep(_POLL_SECONDS)
    return seen


def tally_jobs(
    workers: int,
    count: int,
    created: int,
    jobs: dict[str, summary_pb.SummaryJob],
    spent: dict[str, float],
) -> JobsResult:
    ended = [job for job in jobs.values() if job.state in _ENDED]
    succeeded = [job for job in ended if job.state == "SUCCEEDED"]
    latency = LatencyHistogram()
    for job in succeeded:
        latency.record(_seconds(job.updated_at) - _seconds(job.created_at))
    span = (
        max(_seconds(job.updated_at) for job in ended)
        - min(_seconds(job.created_at) for job in ended)
        if ended
        else None
    )
    unfinished = created - len(ended)
    return JobsResult(
        workers=workers,
        jobs=count,
        succeeded=len(succeeded),
        failed=count - len(succeeded) - unfinished,  # FAILED, or refused at creation
        unfinished=unfinished,
        seconds=span,
        p50_seconds=latency.percentile(50),
        p99_seconds=latency.percentile(99),
        cpu_seconds=spent,
    )


def _seconds(stamp: Timestamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


def _line(result: JobsResult) -> str:
    rate = result.jobs_per_second
    p50 = "-" if result.p50_seconds is None else f"{result.p50_seconds:.2f}"
    p99 = "-" if result.p99_seconds is None else f"{result.p99_seconds:.2f}"
    return (
        f"{'Summary jobs':<24} workers={result.workers} "
        f"{result.succeeded}/{result.jobs} succeeded  "
        f"{'-' if rate is None else f'{rate:.1f}'} jobs/s  p50 {p50} s  p99 {p99} s"
    )
