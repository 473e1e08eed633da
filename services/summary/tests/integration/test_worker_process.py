"""`python -m summary worker` as the stack runs it: gRPC health on its own port, Prometheus
metrics on its metrics port, jobs done, a clean stop on SIGTERM."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import httpx

from devstack.health import wait_for_grpc_health_async
from devstack.ports import free_port
from devstack.process_runner import ProcessRunner
from services.patient_record.tests.integration.patient_client import PatientClient
from services.summary.tests.integration.summary_client import (
    create_job,
    pneumonia_patient,
    until_state,
)
from summary.settings import SummarySettings

if TYPE_CHECKING:
    from medstation.summary.v1.summary_service_pb2_grpc import SummaryServiceAsyncStub

_SETTINGS = (
    "database_url",
    "redis_url",
    "patient_service_addr",
    "jobs_stream",
    "events_stream",
    "reconcile_interval_seconds",
)


async def test_the_worker_command_serves_health_and_metrics_and_does_jobs(
    patients: PatientClient,
    summaries: SummaryServiceAsyncStub,
    settings: SummarySettings,
    process_runner: ProcessRunner,
) -> None:
    grpc_port, metrics_port = free_port(), free_port()
    env = {f"MEDSTATION_{name.upper()}": str(getattr(settings, name)) for name in _SETTINGS}
    env |= {
        "MEDSTATION_GRPC_PORT": str(grpc_port),
        "MEDSTATION_METRICS_PORT": str(metrics_port),
        "OTEL_TRACES_EXPORTER": "none",
    }
    worker = process_runner.start(
        "summary-worker", [sys.executable, "-m", "summary", "worker"], env
    )

    def exited() -> str | None:
        return None if worker.alive() else f"exited:\n{worker.log_tail()}"

    await wait_for_grpc_health_async(f"127.0.0.1:{grpc_port}", "", give_up=exited)
    doctor = patients.clinician()
    patient = await pneumonia_patient(patients, doctor)
    job = await create_job(summaries, doctor, patient.id)
    done = await until_state(summaries, doctor, job.id)
    assert (done.state, done.summary.note_count) == ("SUCCEEDED", 2)

    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    assert 'summary_jobs_processed_total{outcome="succeeded"}' in metrics
    assert "summary_job_duration_seconds_bucket" in metrics
    assert "summary_jobs_queued" in metrics
    assert "summary_job_oldest_queued_age_seconds" in metrics
    assert worker.stop() == 0  # SIGTERM: a clean stop
