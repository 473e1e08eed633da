"""What a benchmark run is told: where the stack listens, and what to measure for how long."""

from __future__ import annotations

from dataclasses import dataclass

from devstack.bench.scenarios import CHAT_SERVICE, PATIENT_SERVICE, SUMMARY_SERVICE

OPTIONAL_SERVICES = (PATIENT_SERVICE, SUMMARY_SERVICE, CHAT_SERVICE)


@dataclass(frozen=True)
class Endpoints:
    """Where the stack under test listens; nothing assumes the `make run` ports.

    An optional service's address is None to leave its scenarios out; "required" means
    its checkout exists (so `make run` starts it) and not serving is an error.
    """

    gateway_url: str
    envoy_admin_url: str | None
    user_addr: str
    patient_addr: str | None
    patient_required: bool
    postgres_admin_url: str
    redis_url: str
    summary_addr: str | None = None
    summary_required: bool = False
    summary_worker_addr: str | None = None  # the stack's worker (its gRPC health port)
    chat_addr: str | None = None
    chat_required: bool = False
    # patient-record's Prometheus endpoint, for its patient cache's hit and miss counters.
    patient_metrics_url: str | None = None

    def address(self, service: str) -> str | None:
        return {
            PATIENT_SERVICE: self.patient_addr,
            SUMMARY_SERVICE: self.summary_addr,
            CHAT_SERVICE: self.chat_addr,
        }.get(service, self.user_addr)

    def required(self, service: str) -> bool:
        return {
            PATIENT_SERVICE: self.patient_required,
            SUMMARY_SERVICE: self.summary_required,
            CHAT_SERVICE: self.chat_required,
        }.get(service, True)


@dataclass(frozen=True)
class RunPlan:
    duration: float
    warmup: float
    concurrency: tuple[int, ...]
    scenarios: list[str] | None  # None: all
    vias: tuple[str, ...]
    patients: int
    chats: int = 16  # bench chats the chat scenarios cycle through
    jobs: int = 100  # summary jobs per row of the jobs measurement
    workers: tuple[int, ...] = (1, 2)  # summary workers per row
    soak_seconds: float | None = None  # --soak: GetPatient at half capacity for this long
