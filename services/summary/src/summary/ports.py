"""What the use cases need from the world outside the database, as protocols: the
patient-record service and the job stream. Adapters: `patients`, `streams`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from medstation_platform import errors
from medstation_platform.auth.principal import Principal
from summary.domain import Chart, TraceContext


class PatientDirectory(Protocol):
    async def check_visible(
        self, caller: Principal, patient_id: str, *, timeout_seconds: float
    ) -> None:
        """PatientNotFound unless `caller` may see the patient."""
        ...

    async def chart(self, caller: Principal, patient_id: str, *, timeout_seconds: float) -> Chart:
        """The patient and all its notes, as `caller` may see them."""
        ...


class JobQueue(Protocol):
    async def enqueue(self, job_id: str, trace_context: TraceContext) -> str:
        """Appends the job to the stream; its entry id. QueueUnavailable on failure."""
        ...

    async def present(self, entry_ids: Sequence[str]) -> set[str]:
        """Which of these entries the stream still holds. QueueUnavailable on failure."""
        ...


class QueueUnavailable(errors.Unavailable):
    reason = "JOB_QUEUE_UNAVAILABLE"
    default_message = "the job queue is unavailable"
