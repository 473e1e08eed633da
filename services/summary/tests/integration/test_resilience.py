"""No accepted job is ever lost, and none succeeds twice: not when a worker is killed in the
middle of a job, not when Redis restarts empty with a hundred jobs on its stream."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import pytest
import redis.asyncio as redis_async
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.ports import free_port
from devstack.process_runner import ProcessRunner, RunningProcess
from devstack.pytest_plugin import MakeDatabase
from medstation.summary.v1 import summary_service_pb2 as pb
from medstation_llm.registry import ModelRegistry
from medstation_llm.types import Completion, PatientChart
from medstation_platform.migrations import upgrade_to_head
from services.patient_record.tests.integration.patient_client import PatientClient
from services.summary.tests.integration.conftest import ServeSummary, StartWorker
from services.summary.tests.integration.summary_client import (
    count_rows,
    create_job,
    job_row,
    pneumonia_patient,
    read_all,
    summary_stub,
    until_state,
)
from summary import tables
from summary.__main__ import MIGRATIONS
from summary.settings import SummarySettings

if TYPE_CHECKING:
    from medstation.summary.v1.summary_service_pb2_grpc import SummaryServiceAsyncStub

SLOW_WORKER = Path(__file__).with_name("slow_worker.py")
# What a worker process needs to find the job, the chart and its peers.
_WORKER_SETTINGS = (
    "database_url",
    "redis_url",
    "patient_service_addr",
    "jobs_stream",
    "events_stream",
    "job_timeout_seconds",
    "job_lease_seconds",
    "job_claim_idle_seconds",
    "job_requeue_after_seconds",
    "reconcile_interval_seconds",
)


@pytest.fixture
def summary_database_url(make_database: MakeDatabase) -> str:
    """A database of its own: no job another test left queued competes for the workers."""
    url = make_database("summary_resilience_tests")
    upgrade_to_head(MIGRATIONS, url)
    return url


def _worker_env(settings: SummarySettings, **extra: str) -> dict[str, str]:
    env = {f"MEDSTATION_{name.upper()}": str(getattr(settings, name)) for name in _WORKER_SETTINGS}
    return {**env, "MEDSTATION_WORKER_CONCURRENCY": "1", **extra}


async def test_a_worker_killed_mid_job_leaves_it_to_another_and_it_succeeds_once(
    patients: PatientClient,
    summaries: SummaryServiceAsyncStub,
    settings: SummarySettings,
    start_worker: StartWorker,
    engine: AsyncEngine,
    process_runner: ProcessRunner,
) -> None:
    doctor = patients.clinician()
    patient = await pneumonia_patient(patients, doctor)
    job = await create_job(summaries, doctor, patient.id)
    watch = summaries.WatchSummaryJob(
        pb.WatchSummaryJobRequest(id=job.id), metadata=doctor.metadata, timeout=60
    )
    slow = process_runner.start(
        "slow-worker",
        [sys.executable, str(SLOW_WORKER)],
        env=_worker_env(settings, SLOW_SUMMARY_SECONDS="600"),
    )
    await until_state(summaries, doctor, job.id, ("RUNNING",))  # its model is writing
    os.kill(slow.pid, signal.SIGKILL)
    slow.popen.wait(10)

    await start_worker()
    states = [update.state for update in await read_all(watch)]
    assert states[-1] == "SUCCEEDED"
    assert states.count("SUCCEEDED") == 1
    row = await job_row(engine, job.id)
    assert (row.state, row.attempts) == ("SUCCEEDED", 2)
    assert await count_rows(engine, tables.summaries, patient_id=patient.id) == 1


async def test_two_workers_share_the_jobs_and_run_each_once(
    patients: PatientClient,
    summaries: SummaryServiceAsyncStub,
    start_worker: StartWorker,
    engine: AsyncEngine,
) -> None:
    workers = [await start_worker(), await start_worker()]
    doctor = patients.clinician()
    charts = [await pneumonia_patient(patients, doctor) for _ in range(3)]
    jobs = [await create_job(summaries, doctor, charts[n % 3].id) for n in range(20)]
    for job in jobs:
        assert (await until_state(summaries, doctor, job.id)).state == "SUCCEEDED"
    done = [
        worker.registry.get_sample_value("summary_jobs_processed_total", {"outcome": "succeeded"})
        or 0
        for worker in workers
    ]
    assert sum(done) == len(jobs)  # no job ran twice
    assert {(await job_row(engine, job.id)).attempts for job in jobs} == {1}
    for chart in charts:
        assert await count_rows(engine, tables.summaries, patient_id=chart.id) == 1


class GatedSummarizer:
    """The offline summarizer, held at the door until the test opens it."""

    def __init__(self, settings: SummarySettings) -> None:
        self._summarizer = ModelRegistry(settings.llm).summarizer("offline", "medstation-offline")
        self.writing = asyncio.Event()
        self.gate = asyncio.Event()

    @property
    def provider(self) -> str:
        return self._summarizer.provider

    @property
    def model(self) -> str:
        return self._summarizer.model

    async def summarize(self, chart: PatientChart, *, timeout_seconds: float) -> Completion:
        self.writing.set()
        await self.gate.wait()
        return await self._summarizer.summarize(chart, timeout_seconds=timeout_seconds)

    async def aclose(self) -> None:
        return None


def _start_redis(runner: ProcessRunner, port: int, tmp_path: Path) -> RunningProcess:
    return runner.start(
        f"redis-{port}",
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
    )  # fmt: skip


async def _until_answering(url: str) -> None:
    client = redis_async.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        async with asyncio.timeout(20):
            while True:
                try:
                    await client.ping()
                    return
                except (redis_async.ConnectionError, OSError):
                    await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def _succeeded(engine: AsyncEngine, job_ids: list[str]) -> int:
    jobs = tables.summary_jobs
    query = select(func.count()).where(jobs.c.id.in_(job_ids), jobs.c.state == "SUCCEEDED")
    async with engine.connect() as connection:
        return int(await connection.scalar(query) or 0)


async def test_a_hundred_jobs_survive_redis_restarting_empty(
    patients: PatientClient,
    serve_summary: ServeSummary,
    settings: SummarySettings,
    start_worker: StartWorker,
    engine: AsyncEngine,
    process_runner: ProcessRunner,
    tmp_path: Path,
) -> None:
    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    own = msgspec.structs.replace(settings, redis_url=redis_url)
    redis_server = _start_redis(process_runner, port, tmp_path)
    await _until_answering(redis_url)
    running = await serve_summary(own)
    doctor = patients.clinician()
    charts = [await pneumonia_patient(patients, doctor) for _ in range(4)]
    summarizer = GatedSummarizer(own)
    # A worker with one slot: it takes a job and waits at the gate while Redis goes.
    await start_worker(msgspec.structs.replace(own, worker_concurrency=1), summarizer=summarizer)

    async with summary_stub(running.port) as summaries:

        async def create(count: int) -> list[str]:
            made = [await create_job(summaries, doctor, charts[n % 4].id) for n in range(count)]
            return [job.id for job in made]

        job_ids = await create(50)
        await asyncio.wait_for(summarizer.writing.wait(), timeout=30)
        redis_server.stop()  # with no persistence: every stream entry and group is gone
        job_ids += await create(50)  # accepted while Redis is down
        _start_redis(process_runner, port, tmp_path)
        await _until_answering(redis_url)
        summarizer.gate.set()

        async with asyncio.timeout(90):
            while True:
                if await _succeeded(engine, job_ids) == len(job_ids):
                    break
                await asyncio.sleep(0.2)
        for chart in charts:
            assert await count_rows(engine, tables.summaries, patient_id=chart.id) == 1
        for job_id in (job_ids[0], job_ids[-1]):
            done = await until_state(summaries, doctor, job_id)
            assert (done.state, done.summary.patient_id) == ("SUCCEEDED", done.patient_id)
