"""The summary service's and worker's configuration (MEDSTATION_* environment variables).

One class for both processes: they share the database, the job stream and the secret
that seals a job's credentials.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from medstation_llm.registry import OFFLINE, OFFLINE_MODEL
from medstation_llm.settings import LlmSettings
from medstation_platform.secret import Secret
from medstation_platform.settings import DatabaseUrl, Port, ServiceSettings, variable_name

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class SummarySettings(ServiceSettings, frozen=True, kw_only=True):
    grpc_port: Port = 50053
    database_url: DatabaseUrl = (
        "postgresql+psycopg://medstation_summary@127.0.0.1:5432/medstation_summary"
    )
    # The language models: read from the same MEDSTATION_LLM_*, _OLLAMA_*, _OPENAI_* and
    # _ANTHROPIC_* variables as if its fields were declared here.
    llm: LlmSettings = msgspec.field(default_factory=LlmSettings)
    patient_service_addr: str = "127.0.0.1:50052"
    summary_provider: NonEmpty = OFFLINE
    summary_model: NonEmpty = OFFLINE_MODEL
    # A chart is fetched whole, 100 notes a page; beyond this the summary is refused
    # rather than written from part of the record.
    max_chart_notes: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 5000

    jobs_stream: NonEmpty = "medstation.summary.jobs"
    jobs_group: NonEmpty = "summary-workers"
    events_stream: NonEmpty = "medstation.patient.events"
    events_group: NonEmpty = "summary"
    # Seals the job creator's access token at rest (AES-GCM); the token is erased when
    # the job ends. Rotating it fails the jobs still waiting, with a clear reason.
    credentials_secret: Secret = Secret("local-development-credentials-secret")

    # One attempt's whole budget: fetching the chart and writing the summary.
    job_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 120.0
    job_max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] = 3
    # A worker renews its claim every third of this; a claim not renewed for this long
    # belongs to a dead worker and the job is queued again.
    job_lease_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    # Stream entries delivered to a consumer that has been silent this long are taken
    # over (XAUTOCLAIM). 0 means three times the job timeout (at least twice the lease).
    job_claim_idle_seconds: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    # A queued job not seen on the stream for this long is appended again.
    job_requeue_after_seconds: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    reconcile_interval_seconds: Annotated[float, msgspec.Meta(gt=0, le=300)] = 5.0
    worker_concurrency: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4
    # WatchSummaryJob reads the job this often, and ends after the limit at most.
    watch_poll_seconds: Annotated[float, msgspec.Meta(gt=0, le=10)] = 0.3
    watch_max_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 600.0

    def __post_init__(self) -> None:
        if self.job_claim_idle_seconds and self.job_claim_idle_seconds <= self.job_lease_seconds:
            raise ValueError(
                f"{variable_name('job_claim_idle_seconds')} must exceed "
                f"{variable_name('job_lease_seconds')}"
            )

    @property
    def claim_idle_seconds(self) -> float:
        if self.job_claim_idle_seconds:
            return self.job_claim_idle_seconds
        return max(3 * self.job_timeout_seconds, 2 * self.job_lease_seconds)
