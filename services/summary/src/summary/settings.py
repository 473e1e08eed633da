"""The summary service's and worker's configuration (MEDSTATION_* environment variables).

One class for both processes: they share the database, the job stream and the secret
that seals a job's credentials.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, model_validator

from medstation_llm.registry import OFFLINE, OFFLINE_MODEL
from medstation_llm.settings import LlmSettings
from medstation_platform.settings import ServiceSettings


class SummarySettings(ServiceSettings, LlmSettings):
    grpc_port: int = Field(default=50053, ge=0, le=65535)
    database_url: str = Field(
        default="postgresql+psycopg://medstation_summary@127.0.0.1:5432/medstation_summary",
        pattern=r"^postgresql\+psycopg://",
    )
    patient_service_addr: str = "127.0.0.1:50052"
    summary_provider: str = Field(default=OFFLINE, min_length=1)
    summary_model: str = Field(default=OFFLINE_MODEL, min_length=1)
    # A chart is fetched whole, 100 notes a page; beyond this the summary is refused
    # rather than written from part of the record.
    max_chart_notes: int = Field(default=5000, ge=1, le=100_000)

    jobs_stream: str = Field(default="medstation.summary.jobs", min_length=1)
    jobs_group: str = Field(default="summary-workers", min_length=1)
    events_stream: str = Field(default="medstation.patient.events", min_length=1)
    events_group: str = Field(default="summary", min_length=1)
    # Seals the job creator's access token at rest (AES-GCM); the token is erased when
    # the job ends. Rotating it fails the jobs still waiting, with a clear reason.
    credentials_secret: SecretStr = SecretStr("local-development-credentials-secret")

    # One attempt's whole budget: fetching the chart and writing the summary.
    job_timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    job_max_attempts: int = Field(default=3, ge=1, le=20)
    # A worker renews its claim every third of this; a claim not renewed for this long
    # belongs to a dead worker and the job is queued again.
    job_lease_seconds: float = Field(default=30.0, gt=0, le=3600)
    # Stream entries delivered to a consumer that has been silent this long are taken
    # over (XAUTOCLAIM). 0 means three times the job timeout (at least twice the lease).
    job_claim_idle_seconds: float = Field(default=0.0, ge=0)
    # A queued job not seen on the stream for this long is appended again.
    job_requeue_after_seconds: float = Field(default=30.0, gt=0)
    reconcile_interval_seconds: float = Field(default=5.0, gt=0, le=300)
    worker_concurrency: int = Field(default=4, ge=1, le=64)
    # WatchSummaryJob reads the job this often, and ends after the limit at most.
    watch_poll_seconds: float = Field(default=0.3, gt=0, le=10)
    watch_max_seconds: float = Field(default=600.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _claim_idle_outlives_a_job(self) -> Self:
        if self.job_claim_idle_seconds and self.job_claim_idle_seconds <= self.job_lease_seconds:
            raise ValueError("job_claim_idle_seconds must exceed job_lease_seconds")
        return self

    @property
    def claim_idle_seconds(self) -> float:
        if self.job_claim_idle_seconds:
            return self.job_claim_idle_seconds
        return max(3 * self.job_timeout_seconds, 2 * self.job_lease_seconds)
