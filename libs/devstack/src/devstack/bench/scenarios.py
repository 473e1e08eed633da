"""What each benchmark scenario asks, as REST (for wrk, through the gateway) and as gRPC.

A scenario is a cycle of requests indexed by a sequence number: the same patient every
time (a cache hit after the first), a different patient each time (a miss, as long as the
cycle is longer than the run), or a note for the next patient. Both paths walk the same
cycle, so "gateway" and "direct" rows of a scenario do the same work.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from devstack.api_session import Metadata
from devstack.bench.dataset import BenchData
from devstack.bench.grpc_load import Call
from devstack.bench.wrk import HttpRequest
from medstation.patient.v1 import patient_service_pb2 as patient_pb
from medstation.patient.v1 import patient_service_pb2_grpc as patient_grpc
from medstation.user.v1 import user_service_pb2 as user_pb
from medstation.user.v1 import user_service_pb2_grpc as user_grpc

USER_SERVICE = "user"
PATIENT_SERVICE = "patient-record"
LIST_PAGE_SIZE = 50


@dataclass(frozen=True)
class GrpcTargets:
    """Stubs on channels straight to the services (no gateway)."""

    users: user_grpc.UserServiceAsyncStub
    patients: patient_grpc.PatientRecordServiceAsyncStub | None

    def patient_stub(self) -> patient_grpc.PatientRecordServiceAsyncStub:
        if self.patients is None:
            raise RuntimeError("a patient scenario ran without the patient-record service")
        return self.patients


GrpcCallFactory = Callable[[GrpcTargets, BenchData, Metadata, float], Call]


@dataclass(frozen=True)
class Scenario:
    key: str  # what --scenarios takes
    title: str  # the report's heading
    service: str  # the registry key of the service that does the work
    summary: str  # one line: what a request does
    http_cycle: Callable[[BenchData], list[HttpRequest]]
    grpc_call: GrpcCallFactory
    # Empty the patient cache before the measured run (see patient_cache.evict).
    cold_cache: bool = False


def _get_me_grpc(targets: GrpcTargets, data: BenchData, metadata: Metadata, timeout: float) -> Call:
    request = user_pb.GetMeRequest()
    return lambda _: targets.users.GetMe(request, metadata=metadata, timeout=timeout)


def _get_patient_grpc(ids: Callable[[BenchData], tuple[str, ...]]) -> GrpcCallFactory:
    def factory(targets: GrpcTargets, data: BenchData, metadata: Metadata, timeout: float) -> Call:
        stub = targets.patient_stub()
        requests = [patient_pb.GetPatientRequest(id=patient_id) for patient_id in ids(data)]
        return lambda n: stub.GetPatient(
            requests[n % len(requests)], metadata=metadata, timeout=timeout
        )

    return factory


def _list_patients_grpc(
    targets: GrpcTargets, data: BenchData, metadata: Metadata, timeout: float
) -> Call:
    stub = targets.patient_stub()
    request = patient_pb.ListPatientsRequest(page_size=LIST_PAGE_SIZE)
    return lambda _: stub.ListPatients(request, metadata=metadata, timeout=timeout)


def _create_note_grpc(
    targets: GrpcTargets, data: BenchData, metadata: Metadata, timeout: float
) -> Call:
    stub = targets.patient_stub()

    def call(n: int) -> Awaitable[object]:
        request = patient_pb.CreateNoteRequest(
            patient_id=data.patient_ids[n % len(data.patient_ids)],
            content=data.note_bodies[n % len(data.note_bodies)],
        )
        return stub.CreateNote(request, metadata=metadata, timeout=timeout)

    return call


def _first_patient(data: BenchData) -> tuple[str, ...]:
    return data.patient_ids[:1]


def _all_patients(data: BenchData) -> tuple[str, ...]:
    return data.patient_ids


def _note_cycle(data: BenchData) -> list[HttpRequest]:
    return [
        HttpRequest(
            "POST",
            f"/v1/patients/{patient_id}/notes",
            json.dumps({"content": data.note_bodies[n % len(data.note_bodies)]}),
        )
        for n, patient_id in enumerate(data.patient_ids)
    ]


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        key="get_me",
        title="GetMe",
        service=USER_SERVICE,
        summary="the caller's own account (token verified, account re-read)",
        http_cycle=lambda data: [HttpRequest("GET", "/v1/users/me")],
        grpc_call=_get_me_grpc,
    ),
    Scenario(
        key="get_patient_hit",
        title="GetPatient (cache hit)",
        service=PATIENT_SERVICE,
        summary="the same patient on every request, so served from the cache after the first",
        http_cycle=lambda data: [HttpRequest("GET", f"/v1/patients/{data.patient_ids[0]}")],
        grpc_call=_get_patient_grpc(_first_patient),
    ),
    Scenario(
        key="get_patient_miss",
        title="GetPatient (cache miss)",
        service=PATIENT_SERVICE,
        summary="a different patient on each request, cycling through all bench patients, "
        "with their cached values deleted before the run",
        http_cycle=lambda data: [HttpRequest("GET", f"/v1/patients/{i}") for i in data.patient_ids],
        grpc_call=_get_patient_grpc(_all_patients),
        cold_cache=True,
    ),
    Scenario(
        key="list_patients",
        title="ListPatients",
        service=PATIENT_SERVICE,
        summary=f"the first page of the caller's patients, page_size {LIST_PAGE_SIZE}",
        http_cycle=lambda data: [HttpRequest("GET", f"/v1/patients?page_size={LIST_PAGE_SIZE}")],
        grpc_call=_list_patients_grpc,
    ),
    Scenario(
        key="create_note",
        title="CreateNote",
        service=PATIENT_SERVICE,
        summary="a new SOAP note (~1 KB) for the next patient: insert, audit row, outbox event",
        http_cycle=_note_cycle,
        grpc_call=_create_note_grpc,
    ),
)


def scenario_keys() -> list[str]:
    return [scenario.key for scenario in SCENARIOS]


def select(keys: list[str] | None) -> list[Scenario]:
    """The scenarios named (all when None), in the canonical order; unknown keys raise."""
    if keys is None:
        return list(SCENARIOS)
    unknown = sorted(set(keys) - set(scenario_keys()))
    if unknown:
        raise ValueError(f"unknown scenarios {unknown}; known: {', '.join(scenario_keys())}")
    return [scenario for scenario in SCENARIOS if scenario.key in keys]
