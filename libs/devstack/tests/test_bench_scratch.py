"""CreateNote's scratch patients: made apart from the patients the other scenarios read,
never listed as those, the only patients CreateNote writes to, and their charts emptied
after the scenario (failures reported). Against an in-memory patient-record over real gRPC.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc
import grpc.aio
import pytest

from devstack.api_session import ApiSession
from devstack.bench import event_backlog, runner
from devstack.bench.dataset import (
    BENCH_CREDENTIALS,
    BENCH_MRN_PREFIX,
    SCRATCH_MRN_PREFIX,
    BenchData,
    ensure_bench_data,
    ensure_scratch_patients,
)
from devstack.bench.event_backlog import EventBacklog, EventStream, Mark
from devstack.bench.plan import Endpoints, RunPlan
from devstack.bench.scenarios import PATIENT_SERVICE, SCENARIOS, GrpcTargets
from devstack.bench.scratch_charts import empty_scratch_charts
from devstack.bench.vias import VIA_DIRECT
from devstack.ports import free_port
from devstack.soap_notes import MAX_NOTES, MIN_NOTES
from medstation.patient.v1 import patient_service_pb2 as patient_pb
from medstation.patient.v1 import patient_service_pb2_grpc as patient_grpc
from medstation.user.v1 import user_service_pb2 as user_pb
from medstation.user.v1 import user_service_pb2_grpc as user_grpc

Context = grpc.aio.ServicerContext[bytes, bytes]
Handler = Callable[[bytes, Context], Awaitable[bytes]]


@dataclass
class FakePatientRecord:
    """The part of PatientRecordService the bench's data and CreateNote use, in memory."""

    patients: list[patient_pb.Patient] = field(default_factory=list)  # by created_at
    notes: dict[str, list[str]] = field(default_factory=dict)  # note ids by patient id
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, patient id)
    unavailable: set[str] = field(default_factory=set)  # DeleteAllNotes fails for these
    _patient_requests: dict[str, patient_pb.Patient] = field(default_factory=dict)
    _note_requests: dict[str, str] = field(default_factory=dict)

    def handler(self) -> grpc.GenericRpcHandler[bytes, bytes]:
        methods: dict[str, Handler] = {
            "CreatePatient": self._create_patient,
            "ListPatients": self._list_patients,
            "CreateNote": self._create_note,
            "DeleteAllNotes": self._delete_all_notes,
        }
        service = patient_pb.DESCRIPTOR.services_by_name["PatientRecordService"].full_name
        return grpc.method_handlers_generic_handler(
            service, {name: grpc.unary_unary_rpc_method_handler(m) for name, m in methods.items()}
        )

    def mrns(self, patient_ids: tuple[str, ...]) -> list[str]:
        by_id = {patient.id: patient.mrn for patient in self.patients}
        return [by_id[patient_id] for patient_id in patient_ids]

    async def _create_patient(self, request: bytes, context: Context) -> bytes:
        asked = patient_pb.CreatePatientRequest.FromString(request)
        self.calls.append(("CreatePatient", ""))
        if (patient := self._patient_requests.get(asked.request_id)) is None:
            patient = patient_pb.Patient(id=str(uuid.uuid4()), name=asked.name, mrn=asked.mrn)
            patient.created_at.GetCurrentTime()
            self.patients.append(patient)
            self.notes[patient.id] = []
            self._patient_requests[asked.request_id] = patient
        return patient.SerializeToString()

    async def _list_patients(self, request: bytes, context: Context) -> bytes:
        asked = patient_pb.ListPatientsRequest.FromString(request)
        if asked.order_by != "created_at":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "this fake lists by creation")
        start = int(asked.page_token or 0)
        end = start + (asked.page_size or 50)
        page = patient_pb.ListPatientsResponse(
            patients=self.patients[start:end],
            next_page_token=str(end) if end < len(self.patients) else "",
        )
        return page.SerializeToString()

    async def _create_note(self, request: bytes, context: Context) -> bytes:
        asked = patient_pb.CreateNoteRequest.FromString(request)
        self.calls.append(("CreateNote", asked.patient_id))
        if asked.patient_id not in self.notes:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such patient")
        if (note_id := self._note_requests.get(asked.request_id)) is None:
            note_id = str(uuid.uuid4())
            self.notes[asked.patient_id].append(note_id)
            if asked.request_id:
                self._note_requests[asked.request_id] = note_id
        note = patient_pb.Note(id=note_id, patient_id=asked.patient_id)
        note.created_at.GetCurrentTime()
        return note.SerializeToString()

    async def _delete_all_notes(self, request: bytes, context: Context) -> bytes:
        asked = patient_pb.DeleteAllNotesRequest.FromString(request)
        self.calls.append(("DeleteAllNotes", asked.patient_id))
        if asked.patient_id in self.unavailable:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "patient-record is restarting")
        deleted, self.notes[asked.patient_id] = self.notes[asked.patient_id], []
        return patient_pb.DeleteAllNotesResponse(deleted_count=len(deleted)).SerializeToString()


async def _login(request: bytes, context: Context) -> bytes:
    return user_pb.LoginResponse(access_token="bench-token", expires_in=900).SerializeToString()


@dataclass
class FakeStack:
    records: FakePatientRecord
    address: str
    session: ApiSession
    users: user_grpc.UserServiceAsyncStub
    patients: patient_grpc.PatientRecordServiceAsyncStub


@pytest.fixture
async def fake() -> AsyncIterator[FakeStack]:
    records = FakePatientRecord()
    users = user_pb.DESCRIPTOR.services_by_name["UserService"].full_name
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            records.handler(),
            grpc.method_handlers_generic_handler(
                users, {"Login": grpc.unary_unary_rpc_method_handler(_login)}
            ),
        ]
    )
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            yield FakeStack(
                records,
                address,
                ApiSession(channel, BENCH_CREDENTIALS),
                user_grpc.UserServiceStub(channel),
                patient_grpc.PatientRecordServiceStub(channel),
            )
    finally:
        await server.stop(None)


async def _bench_data(fake: FakeStack, patients: int, scratch: int) -> BenchData:
    data = await ensure_bench_data(fake.session, fake.patients, patients, io.StringIO())
    note_patients = await ensure_scratch_patients(fake.session, fake.patients, scratch)
    return replace(data, note_patient_ids=note_patients)


async def test_scratch_patients_are_made_once_with_empty_charts_and_their_own_mrns(
    fake: FakeStack,
) -> None:
    data = await _bench_data(fake, patients=5, scratch=8)
    assert await ensure_scratch_patients(fake.session, fake.patients, 8) == data.note_patient_ids
    assert len(fake.records.patients) == 5 + 8  # the second call made nobody new
    assert all(m.startswith(SCRATCH_MRN_PREFIX) for m in fake.records.mrns(data.note_patient_ids))
    assert all(m.startswith(BENCH_MRN_PREFIX) for m in fake.records.mrns(data.patient_ids))
    assert all(not fake.records.notes[p] for p in data.note_patient_ids)
    assert all(MIN_NOTES <= len(fake.records.notes[p]) <= MAX_NOTES for p in data.patient_ids)


async def test_listing_finds_the_read_patients_only_when_scratch_patients_exist(
    fake: FakeStack,
) -> None:
    # A first run with 30 read patients and its scratch patients; then runs asking for
    # the same 30 (found by listing, nothing made), and for 40: the scratch patients,
    # made before the 10 missing ones, are listed among them but must not stand in.
    def creates() -> int:
        return fake.records.calls.count(("CreatePatient", ""))

    first = await _bench_data(fake, patients=30, scratch=64)
    made = creates()
    again = await ensure_bench_data(fake.session, fake.patients, 30, io.StringIO())
    assert (set(again.patient_ids), creates()) == (set(first.patient_ids), made)

    more = await ensure_bench_data(fake.session, fake.patients, 40, io.StringIO())
    assert len(more.patient_ids) == 40
    assert more.patient_ids[:30] == first.patient_ids  # both seeded: in index order
    assert not set(more.patient_ids) & set(first.note_patient_ids)
    assert all(m.startswith(BENCH_MRN_PREFIX) for m in fake.records.mrns(more.patient_ids))
    # Listed now across two pages, the scratch patients between the read ones.
    made = creates()
    listed = await ensure_bench_data(fake.session, fake.patients, 40, io.StringIO())
    assert (set(listed.patient_ids), creates()) == (set(more.patient_ids), made)


def test_only_create_note_names_the_scratch_patients() -> None:
    data = BenchData(
        patient_ids=("read-1", "read-2", "read-3"),
        note_bodies=("Subjective: well",),
        search_queries=("Garrcia",),
        chat_ids=("chat-1",),
        questions=("How is the patient?",),
        summarized_patient_ids=("read-1",),
        note_patient_ids=("scratch-1", "scratch-2"),
    )
    for scenario in SCENARIOS:
        sent = json.dumps([(r.path, r.body) for r in scenario.http_cycle(data)])
        scratch = {p for p in data.note_patient_ids if p in sent}
        read = {p for p in data.patient_ids if p in sent}
        if scenario.writes_scratch_notes:
            assert (scratch, read) == ({"scratch-1", "scratch-2"}, set()), scenario.key
        else:
            assert not scratch, scenario.key


class RecordingBacklog(EventBacklog):
    """An event backlog that records what it was asked to wait for."""

    def __init__(self) -> None:
        super().__init__(EventStream("redis://unused", "stream", "group"))
        self.waited_for: list[int] = []

    async def mark(self) -> Mark | None:
        return Mark(0, (0, 0))

    async def wait_handled(self, mark: Mark | None, expected: int) -> None:
        self.waited_for.append(expected)


async def _write_notes(fake: FakeStack, patient_ids: tuple[str, ...], each: int) -> None:
    for patient_id in patient_ids:
        for _ in range(each):
            await fake.patients.CreateNote(
                patient_pb.CreateNoteRequest(patient_id=patient_id, content="S: O: A: P:"),
                metadata=await fake.session.metadata(),
            )


async def test_emptying_the_scratch_charts_deletes_every_note_and_waits_out_the_events(
    fake: FakeStack,
) -> None:
    data = await _bench_data(fake, patients=3, scratch=10)
    seeded = {p: list(fake.records.notes[p]) for p in data.patient_ids}
    await _write_notes(fake, data.note_patient_ids, each=3)
    backlog = RecordingBacklog()

    emptied = await empty_scratch_charts(
        fake.session, fake.patients, data.note_patient_ids, backlog
    )

    assert (emptied.notes_deleted, emptied.failures) == (30, [])
    assert all(not fake.records.notes[p] for p in data.note_patient_ids)
    assert {p: fake.records.notes[p] for p in data.patient_ids} == seeded
    assert backlog.waited_for == [30]
    assert "10 scratch patients" in emptied.describe()
    assert "deleted 30 notes" in emptied.describe()
    assert "FAILED" not in emptied.describe()


async def test_a_chart_that_cannot_be_emptied_is_reported_and_the_others_still_are(
    fake: FakeStack,
) -> None:
    data = await _bench_data(fake, patients=1, scratch=5)
    await _write_notes(fake, data.note_patient_ids, each=2)
    stuck = data.note_patient_ids[2]
    fake.records.unavailable.add(stuck)

    emptied = await empty_scratch_charts(
        fake.session, fake.patients, data.note_patient_ids, RecordingBacklog()
    )

    assert emptied.notes_deleted == 8
    assert emptied.failures == [f"{stuck}: UNAVAILABLE: patient-record is restarting"]
    assert [p for p in data.note_patient_ids if fake.records.notes[p]] == [stuck]
    assert "FAILED for 1 of them" in emptied.describe()
    assert "UNAVAILABLE" in emptied.describe()


async def test_create_note_writes_to_scratch_patients_and_empties_them_after_its_last_run(
    fake: FakeStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No Redis answers here: the bench's pause for an unobservable event stream, made short.
    monkeypatch.setattr(event_backlog, "FALLBACK_PAUSE_SECONDS", 0.0)
    data = await _bench_data(fake, patients=6, scratch=4)
    seeded = {p: list(fake.records.notes[p]) for p in data.patient_ids}
    fake.records.calls.clear()
    endpoints = Endpoints(
        f"http://127.0.0.1:{free_port()}", None, fake.address, fake.address, False, "pg",
        f"redis://127.0.0.1:{free_port()}",
    )  # fmt: skip
    plan = RunPlan(0.2, 0.1, (1, 4), ["create_note"], (VIA_DIRECT,), patients=6)
    notes: list[str] = []
    measurer = runner._Measurer(
        endpoints, plan, fake.session, GrpcTargets(fake.users, fake.patients), data,
        None, tmp_path, frozenset({PATIENT_SERVICE}), lambda _: None, notes,
    )  # fmt: skip
    create_note = next(s for s in SCENARIOS if s.key == "create_note")

    results = await measurer.scenario(create_note, [VIA_DIRECT])

    assert [r.concurrency for r in results] == [1, 4]
    assert all(r.stats.ok > 0 and r.stats.errors == 0 for r in results)
    calls = fake.records.calls
    writes = [i for i, (method, _) in enumerate(calls) if method == "CreateNote"]
    assert {calls[i][1] for i in writes} == set(data.note_patient_ids)
    deletes = [i for i, (method, _) in enumerate(calls) if method == "DeleteAllNotes"]
    assert sorted(calls[i][1] for i in deletes) == sorted(data.note_patient_ids)
    assert min(deletes) > max(writes)  # after every level, warm-ups included
    assert all(not fake.records.notes[p] for p in data.note_patient_ids)
    assert {p: fake.records.notes[p] for p in data.patient_ids} == seeded
    assert notes == [
        f"CreateNote wrote to 4 scratch patients of its own, which no other scenario reads; "
        f"emptying their charts after it deleted {len(writes):,} notes"
    ]
