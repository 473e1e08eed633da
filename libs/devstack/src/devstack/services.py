"""The service registry: every MedStation service, where it lives and what it listens on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WorkerEntry:
    """A background process of a service: `python -m <package> <command>`, same database.

    It answers gRPC health on `""` only, on its own port, so it is probed like a service.
    """

    key: str
    command: str
    grpc_port: int
    metrics_port: int


@dataclass(frozen=True)
class ServiceEntry:
    """One service as the local stack runs it."""

    key: str
    directory: str
    package: str
    proto_service: str
    grpc_port: int
    metrics_port: int
    database: str
    role: str
    # How the other services are told where this one listens.
    address_variable: str
    workers: tuple[WorkerEntry, ...] = ()

    def pyproject(self, repo_root: Path) -> Path:
        return repo_root / self.directory / "pyproject.toml"


SERVICES: tuple[ServiceEntry, ...] = (
    ServiceEntry(
        key="user",
        directory="services/user",
        package="user",
        proto_service="medstation.user.v1.UserService",
        grpc_port=50051,
        metrics_port=9101,
        database="medstation_user",
        role="medstation_user",
        address_variable="MEDSTATION_USER_SERVICE_ADDR",
    ),
    ServiceEntry(
        key="patient-record",
        directory="services/patient_record",
        package="patient_record",
        proto_service="medstation.patient.v1.PatientRecordService",
        grpc_port=50052,
        metrics_port=9102,
        database="medstation_patient",
        role="medstation_patient",
        address_variable="MEDSTATION_PATIENT_SERVICE_ADDR",
    ),
    ServiceEntry(
        key="summary",
        directory="services/summary",
        package="summary",
        proto_service="medstation.summary.v1.SummaryService",
        grpc_port=50053,
        metrics_port=9103,
        database="medstation_summary",
        role="medstation_summary",
        address_variable="MEDSTATION_SUMMARY_SERVICE_ADDR",
        workers=(
            WorkerEntry(key="summary-worker", command="worker", grpc_port=50063, metrics_port=9113),
        ),
    ),
    ServiceEntry(
        key="chat",
        directory="services/chat",
        package="chat",
        proto_service="medstation.chat.v1.ChatService",
        grpc_port=50054,
        metrics_port=9104,
        database="medstation_chat",
        role="medstation_chat",
        address_variable="MEDSTATION_CHAT_SERVICE_ADDR",
    ),
)


def present_services(repo_root: Path) -> list[ServiceEntry]:
    """The services that exist in this checkout (their pyproject.toml is there)."""
    return [service for service in SERVICES if service.pyproject(repo_root).is_file()]


def service_by_key(key: str) -> ServiceEntry:
    for service in SERVICES:
        if service.key == key:
            return service
    raise KeyError(f"no service {key!r}; known: {', '.join(s.key for s in SERVICES)}")
