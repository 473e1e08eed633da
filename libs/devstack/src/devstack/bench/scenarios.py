"""What each benchmark scenario asks, as REST (for wrk, through the gateway) and as gRPC.

A scenario is a cycle of requests indexed by a sequence number: the same patient every
time (a hit in patient-record's cache after the first), a different patient each time (a
miss, as long as the cycle is longer than the cache), a note for the next scratch patient
(patients CreateNote has to itself, so the charts the other scenarios read keep their
seeded notes), the next bench chat's next question. Both paths walk the same cycle, so
"gateway" and "direct" rows of a scenario do the same work. (Streamed replies and summary
jobs are measured apart: bench.streaming, bench.summary_jobs.)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from devstack.api_session import Metadata
from devstack.bench.baselines import CEILINGS, REFERENCE
from devstack.bench.dataset import SCRATCH_PATIENTS, BenchData
from devstack.bench.grpc_load import Call
from devstack.bench.wrk import HttpRequest
from medstation.chat.v1 import chat_service_pb2 as chat_pb
from medstation.chat.v1 import chat_service_pb2_grpc as chat_grpc
from medstation.patient.v1 import patient_service_pb2 as patient_pb
from medstation.patient.v1 import patient_service_pb2_grpc as patient_grpc
from medstation.summary.v1 import summary_service_pb2 as summary_pb
from medstation.summary.v1 import summary_service_pb2_grpc as summary_grpc
from medstation.user.v1 import user_service_pb2 as user_pb
from medstation.user.v1 import user_service_pb2_grpc as user_grpc

USER_SERVICE = "user"
PATIENT_SERVICE = "patient-record"
SUMMARY_SERVICE = "summary"
CHAT_SERVICE = "chat"
LIST_PAGE_SIZE = 50
SEARCH_PAGE_SIZE = 20
# patient-record's own setting and its default, for the scenarios' descriptions: the
# bench patients must outnumber the cache for "a different patient each time" to miss.
PATIENT_CACHE_ENTRIES_VARIABLE = "MEDSTATION_PATIENT_CACHE_ENTRIES"
PATIENT_CACHE_DEFAULT_ENTRIES = 512


@dataclass(frozen=True)
class GrpcTargets:
    """Stubs on channels straight to the services (no gateway)."""

    users: user_grpc.UserServiceAsyncStub
    patients: patient_grpc.PatientRecordServiceAsyncStub | None
    summaries: summary_grpc.SummaryServiceAsyncStub | None = None
    chats: chat_grpc.ChatServiceAsyncStub | None = None

    def patient_stub(self) -> patient_grpc.PatientRecordServiceAsyncStub:
        if self.patients is None:
            raise RuntimeError("a patient scenario ran without the patient-record service")
        return self.patients

    def summary_stub(self) -> summary_grpc.SummaryServiceAsyncStub:
        if self.summaries is None:
            raise RuntimeError("a summary scenario ran without the summary service")
        return self.summaries

    def chat_stub(self) -> chat_grpc.ChatServiceAsyncStub:
        if self.chats is None:
            raise RuntimeError("a chat scenario ran without the chat service")
        return self.chats


GrpcCallFactory = Callable[[GrpcTargets, BenchData, Metadata, float], Call]


@dataclass(frozen=True)
class Scenario:
    key: str  # what --scenarios takes
    title: str  # the report's heading
    service: str  # the registry key of the service that does the work
    summary: str  # one line: what a request does
    http_cycle: Callable[[BenchData], list[HttpRequest]]
    grpc_call: GrpcCallFactory
    # Other services that must be up for it to run at all.
    requires: tuple[str, ...] = ()
    # Other services it calls on its way (their CPU is reported as "other services").
    upstreams: tuple[str, ...] = ()
    # Each run gets its own batch of patients with no stored summary (bench.summary_data).
    fresh_summaries: bool = False
    # Writes to the scratch patients, whose charts are emptied after the scenario
    # (bench.scratch_charts).
    writes_scratch_notes: bool = False


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


def _search_patients_grpc(
    targets: GrpcTargets, data: BenchData, metadata: Metadata, timeout: float
) -> Call:
    stub = targets.patient_stub()
    requests = [
        patient_pb.ListPatientsRequest(query=query, page_size=SEARCH_PAGE_SIZE)
        for query in data.search_queries
    ]
    return lambda n: stub.ListPatients(
        requests[n % len(requests)], metadata=metadata, timeout=timeout
    )


def _search_cycle(data: BenchData) -> list[HttpRequest]:
    return [
        HttpRequest("GET", f"/v1/patients?query={quote(query)}&page_size={SEARCH_PAGE_SIZE}")
        for query in data.search_queries
    ]


def _create_note_grpc(
    targets: GrpcTargets, data: BenchData, metadata: Metadata, timeout: float
) -> Call:
    stub = targets.patient_stub()

    def call(n: int) -> Awaitable[object]:
        request = patient_pb.CreateNoteRequest(
            patient_id=data.note_patient_ids[n % len(data.note_patient_ids)],
            content=data.note_bodies[n % len(data.note_bodies)],
        )
        return stub.CreateNote(request, metadata=metadata, timeout=timeout)

    return call


def _get_summary_grpc(ids: Callable[[BenchData], tuple[str, ...]]) -> GrpcCallFactory:
    def factory(targets: GrpcTargets, data: BenchData, metadata: Metadata, timeout: float) -> Call:
        stub = targets.summary_stub()
        requests = [summary_pb.GetSummaryRequest(patient_id=patient_id) for patient_id in ids(data)]
        return lambda n: stub.GetSummary(
            requests[n % len(requests)], metadata=metadata, timeout=timeout
        )

    return factory


def _send_message_grpc(
    targets: GrpcTargets, data: BenchData, metadata: Metadata, timeout: float
) -> Call:
    stub = targets.chat_stub()
    requests = [
        chat_pb.SendMessageRequest(chat_id=chat_id, content=question)
        for chat_id, question in chat_cycle(data)
    ]
    return lambda n: stub.SendMessage(
        requests[n % len(requests)], metadata=metadata, timeout=timeout
    )


def chat_cycle(data: BenchData) -> list[tuple[str, str]]:
    """(chat id, question) pairs: the chats in turn, each asked the questions in turn."""
    chats, questions = data.chat_ids, data.questions
    return [
        (chats[i % len(chats)], questions[i % len(questions)])
        for i in range(len(chats) * len(questions))
    ]


def _summary_cycle(
    ids: Callable[[BenchData], tuple[str, ...]],
) -> Callable[[BenchData], list[HttpRequest]]:
    return lambda data: [HttpRequest("GET", f"/v1/patients/{i}/summary") for i in ids(data)]


def _message_cycle(data: BenchData) -> list[HttpRequest]:
    return [
        HttpRequest("POST", f"/v1/chats/{chat_id}/messages", json.dumps({"content": question}))
        for chat_id, question in chat_cycle(data)
    ]


def _summarized_patients(data: BenchData) -> tuple[str, ...]:
    return data.summarized_patient_ids


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
        for n, patient_id in enumerate(data.note_patient_ids)
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
        title="GetPatient (one patient)",
        service=PATIENT_SERVICE,
        summary="the same patient on every request: after the first read its record comes "
        "from patient-record's cache (each read still checks access and writes its audit row "
        "in PostgreSQL, whose statement also returns the row's version the cached record is "
        "checked against)",
        http_cycle=lambda data: [HttpRequest("GET", f"/v1/patients/{data.patient_ids[0]}")],
        grpc_call=_get_patient_grpc(_first_patient),
    ),
    Scenario(
        key="get_patient_miss",
        title="GetPatient (a different patient each time)",
        service=PATIENT_SERVICE,
        summary="cycling through all bench patients, more than the service's cache holds "
        f"({PATIENT_CACHE_ENTRIES_VARIABLE}, {PATIENT_CACHE_DEFAULT_ENTRIES} by default): "
        "each record comes from PostgreSQL, in the statement that checks access and writes "
        "the audit row",
        http_cycle=lambda data: [HttpRequest("GET", f"/v1/patients/{i}") for i in data.patient_ids],
        grpc_call=_get_patient_grpc(_all_patients),
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
        key="search_patients",
        title="ListPatients (fuzzy search)",
        service=PATIENT_SERVICE,
        summary='a bench patient\'s surname with a letter typed twice ("Garrcia"), matched '
        f"fuzzily against the caller's patients (pg_trgm word similarity), the first "
        f"{SEARCH_PAGE_SIZE} by relevance; cycling through 16 such queries",
        http_cycle=_search_cycle,
        grpc_call=_search_patients_grpc,
    ),
    Scenario(
        key="create_note",
        title="CreateNote",
        service=PATIENT_SERVICE,
        summary=f"a new SOAP note (~1 KB) for the next of the {SCRATCH_PATIENTS} scratch "
        "patients it has to itself (charts no other scenario reads, emptied after this "
        "one): insert, audit row, outbox event",
        http_cycle=_note_cycle,
        grpc_call=_create_note_grpc,
        writes_scratch_notes=True,
    ),
    Scenario(
        key="get_summary_reuse",
        title="GetSummary (stored)",
        service=SUMMARY_SERVICE,
        summary="the summary of a patient whose notes have not changed since it was written, "
        "so the stored one is returned (the chart is still fetched from patient-record to "
        "compare); cycling through the first bench patients, summarized before the runs",
        http_cycle=_summary_cycle(_summarized_patients),
        grpc_call=_get_summary_grpc(_summarized_patients),
        requires=(PATIENT_SERVICE,),
        upstreams=(PATIENT_SERVICE,),
    ),
    Scenario(
        key="get_summary_fresh",
        title="GetSummary (written now)",
        service=SUMMARY_SERVICE,
        summary="the summary of a patient with no stored summary for its current notes, so "
        "the offline model writes one and it is stored; a different patient on each "
        "request, each run's patients made fresh just before it by one new note each "
        "(deleted again after the scenario)",
        http_cycle=_summary_cycle(_all_patients),
        grpc_call=_get_summary_grpc(_all_patients),
        requires=(PATIENT_SERVICE,),
        upstreams=(PATIENT_SERVICE,),
        fresh_summaries=True,
    ),
    Scenario(
        key="send_message",
        title="SendMessage",
        service=CHAT_SERVICE,
        summary="a question in one of the bench chats and the offline model's whole reply, "
        "both stored; the bench chats in turn, each about one bench patient whose chart "
        "the model reads (with the patient-record service up)",
        http_cycle=_message_cycle,
        grpc_call=_send_message_grpc,
        upstreams=(PATIENT_SERVICE,),
    ),
)


# Measured by clients of their own instead of wrk and the unary load generator.
STREAM_MESSAGE = "stream_message"  # bench.streaming: time to the first chunk of a reply
SUMMARY_JOBS = "summary_jobs"  # bench.summary_jobs: background jobs, 1 and 2 workers
MEASUREMENTS = (STREAM_MESSAGE, SUMMARY_JOBS)
# Not MedStation: what it is read against, measured first (bench.baselines).
BASELINE_KEYS = (CEILINGS, REFERENCE)


def scenario_keys() -> list[str]:
    """Everything --scenarios takes, in the order a run measures it."""
    return [*BASELINE_KEYS, *(scenario.key for scenario in SCENARIOS), *MEASUREMENTS]


def select(keys: list[str] | None) -> list[Scenario]:
    """The load scenarios named (all when None), in the canonical order; unknown keys raise."""
    if keys is None:
        return list(SCENARIOS)
    unknown = sorted(set(keys) - set(scenario_keys()))
    if unknown:
        raise ValueError(f"unknown scenarios {unknown}; known: {', '.join(scenario_keys())}")
    return [scenario for scenario in SCENARIOS if scenario.key in keys]


def selected_measurements(keys: list[str] | None) -> list[str]:
    return list(MEASUREMENTS) if keys is None else [key for key in MEASUREMENTS if key in keys]


def selected_baselines(keys: list[str] | None) -> list[str]:
    return list(BASELINE_KEYS) if keys is None else [key for key in BASELINE_KEYS if key in keys]
