"""`make seed`: a realistic demo data set, loaded into a running stack through its gRPC API.

The demo clinician (DEMO_EMAIL / DEMO_PASSWORD) is registered if missing, then creates
PATIENTS patients (default 10 000) with 1 to 5 SOAP notes each, 32 calls in flight. Every
CreatePatient / CreateNote carries a request_id derived from the patient's index, and the
service answers a repeated request_id with what it stored the first time: a second run
creates nothing new, and an interrupted run resumes where it stopped. Whether a record was
new is read from its created_at (at or after this run's start).

Data goes through the services' public API, never SQL, so it passes the same validation,
audit trail and events as a clinician's.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import grpc
import grpc.aio
from google.protobuf import timestamp_pb2

from devstack.api_session import ApiSession, Credentials, Metadata, SignInError
from devstack.demo_people import PatientSpec, namespace_uuid, patient_spec
from devstack.postgres import admin_url_from_env, analyze_databases
from devstack.progress import ProgressBar
from devstack.services import service_by_key
from devstack.soap_notes import NoteSpec, notes_for, notes_until
from devstack.stack_probe import StackNotRunningError, require_gateway, require_service
from medstation.patient.v1 import patient_service_pb2 as patient_pb
from medstation.patient.v1 import patient_service_pb2_grpc as patient_grpc

DEMO_EMAIL = "demo.clinician@medstation.local"
DEMO_PASSWORD = "demo-clinician-password"  # noqa: S105  # the documented local demo account
DEMO_DISPLAY_NAME = "Dr Demo Clinician"
DEMO_NAMESPACE = "demo"
DEMO_MRN_PREFIX = "MS"
DEFAULT_PATIENTS = 10_000
DEFAULT_CONCURRENCY = 32
DEFAULT_GATEWAY = "http://127.0.0.1:8080"
CALL_TIMEOUT_SECONDS = 10.0

# Safe to retry: every create carries its request_id, so a retry cannot make a duplicate.
_RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED}
)
_ATTEMPTS = 3
_BACKOFF_SECONDS = 0.2
# Past this many failed patients something is systematically wrong (a bad token, a broken
# service): stop rather than fail 10 000 times.
_MAX_FAILURES = 25

_T = TypeVar("_T")


class SeedAbortedError(RuntimeError):
    """Too many creates failed; the message quotes the first failures."""


@dataclass(frozen=True)
class DataSetPlan:
    """Which patients to ensure: indexes 0..patients-1 of a namespace, with their notes
    unless `with_notes` is False (charts the caller fills and empties itself: a seeded
    note, once deleted, cannot be seeded again, as its request_id names a note now gone)."""

    namespace: uuid.UUID
    patients: int
    mrn_prefix: str
    with_notes: bool = True


@dataclass
class SeedTally:
    """What a seeding run did; patient_ids[i] is the id of patient i ("" if it failed)."""

    patient_ids: list[str]
    patients_created: int = 0
    patients_present: int = 0
    notes_created: int = 0
    notes_present: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.failures.append(message)
        if len(self.failures) > _MAX_FAILURES:
            quoted = "\n  ".join(self.failures[:5])
            raise SeedAbortedError(f"{len(self.failures)} creates failed, first:\n  {quoted}")


async def seed_data_set(
    session: ApiSession,
    patients: patient_grpc.PatientRecordServiceAsyncStub,
    plan: DataSetPlan,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: ProgressBar | None = None,
) -> SeedTally:
    """Ensure every patient of `plan` and its notes exist; `concurrency` patients at a time."""
    started = datetime.now(UTC)
    seeder = _Seeder(session, patients, plan, started)
    indexes = iter(range(plan.patients))

    async def worker() -> None:
        # One shared iterator: each index is taken by exactly one worker.
        for index in indexes:
            await seeder.seed_patient(index)
            if progress is not None:
                progress.advance()

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, plan.patients)))))
    return seeder.tally


class _Seeder:
    def __init__(
        self,
        session: ApiSession,
        patients: patient_grpc.PatientRecordServiceAsyncStub,
        plan: DataSetPlan,
        started: datetime,
    ) -> None:
        self._session = session
        self._patients = patients
        self._plan = plan
        self._started = started
        self._notes_until = notes_until(started)
        self.tally = SeedTally(patient_ids=[""] * plan.patients)

    async def seed_patient(self, index: int) -> None:
        spec = patient_spec(self._plan.namespace, index, self._plan.mrn_prefix)
        try:
            patient = await self._call(lambda metadata: self._create_patient(spec, metadata))
        except grpc.aio.AioRpcError as error:
            self.tally.fail(f"patient {index} ({spec.mrn}): {_describe(error)}")
            return
        self.tally.patient_ids[index] = patient.id
        if self._is_new(patient.created_at):
            self.tally.patients_created += 1
        else:
            self.tally.patients_present += 1
        if not self._plan.with_notes:
            return
        for note in notes_for(self._plan.namespace, spec, self._notes_until):
            await self._seed_note(patient.id, note, index)

    async def _seed_note(self, patient_id: str, note: NoteSpec, index: int) -> None:
        try:
            created = await self._call(
                lambda metadata: self._create_note(patient_id, note, metadata)
            )
        except grpc.aio.AioRpcError as error:
            self.tally.fail(f"note of patient {index}: {_describe(error)}")
            return
        if self._is_new(created.created_at):
            self.tally.notes_created += 1
        else:
            self.tally.notes_present += 1

    def _create_patient(
        self, spec: PatientSpec, metadata: Metadata
    ) -> Awaitable[patient_pb.Patient]:
        request = patient_pb.CreatePatientRequest(
            name=spec.name,
            date_of_birth=spec.date_of_birth.isoformat(),
            sex=spec.sex,
            mrn=spec.mrn,
            request_id=spec.request_id,
        )
        return self._patients.CreatePatient(
            request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS
        )

    def _create_note(
        self, patient_id: str, note: NoteSpec, metadata: Metadata
    ) -> Awaitable[patient_pb.Note]:
        note_time = timestamp_pb2.Timestamp()
        note_time.FromDatetime(note.note_time)
        request = patient_pb.CreateNoteRequest(
            patient_id=patient_id,
            content=note.content,
            note_time=note_time,
            request_id=note.request_id,
        )
        return self._patients.CreateNote(request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)

    async def _call(self, invoke: Callable[[Metadata], Awaitable[_T]]) -> _T:
        for attempt in range(_ATTEMPTS):
            try:
                return await invoke(await self._session.metadata())
            except grpc.aio.AioRpcError as error:
                if error.code() not in _RETRYABLE or attempt == _ATTEMPTS - 1:
                    raise
                await asyncio.sleep(_BACKOFF_SECONDS * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _is_new(self, created_at: timestamp_pb2.Timestamp) -> bool:
        return created_at.ToDatetime(tzinfo=UTC) >= self._started


def _describe(error: grpc.aio.AioRpcError) -> str:
    return f"{error.code().name}: {error.details()}"


# --- the `python -m devstack seed` command ------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--patients", type=_positive, default=DEFAULT_PATIENTS)
    parser.add_argument("--concurrency", type=_positive, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--gateway", default=DEFAULT_GATEWAY, help="checked with /healthz")
    parser.add_argument("--user-addr", default=_local_address("user"))
    parser.add_argument("--patient-addr", default=_local_address("patient-record"))


def run(args: argparse.Namespace) -> int:
    """Seed the demo data set; 0 when every patient and note is there."""
    try:
        return asyncio.run(_seed_demo(args))
    except (StackNotRunningError, SignInError, SeedAbortedError) as error:
        print(f"seed: {error}", file=sys.stderr)
        return 1


async def _seed_demo(args: argparse.Namespace) -> int:
    await require_gateway(args.gateway)
    await require_service("user", args.user_addr, service_by_key("user").proto_service)
    patient_service = service_by_key("patient-record").proto_service
    await require_service("patient-record", args.patient_addr, patient_service)
    plan = DataSetPlan(namespace_uuid(DEMO_NAMESPACE), args.patients, DEMO_MRN_PREFIX)
    credentials = Credentials(DEMO_EMAIL, DEMO_PASSWORD, DEMO_DISPLAY_NAME)
    started = time.monotonic()
    async with (
        grpc.aio.insecure_channel(args.user_addr) as user_channel,
        grpc.aio.insecure_channel(args.patient_addr) as patient_channel,
    ):
        session = ApiSession(user_channel, credentials)
        await session.sign_in()
        progress = ProgressBar("patients", plan.patients)
        try:
            tally = await seed_data_set(
                session,
                patient_grpc.PatientRecordServiceStub(patient_channel),
                plan,
                concurrency=args.concurrency,
                progress=progress,
            )
        finally:
            progress.close()
    # As after any bulk load (this machine's PostgreSQL has no autovacuum to do it).
    analyze_databases(admin_url_from_env(), [service_by_key("patient-record").database])
    print(summary(tally, time.monotonic() - started))
    return 1 if tally.failures else 0


def summary(tally: SeedTally, elapsed_seconds: float) -> str:
    patients = tally.patients_created + tally.patients_present
    notes = tally.notes_created + tally.notes_present
    lines = [
        f"patients: {patients} ({tally.patients_created} created, "
        f"{tally.patients_present} already present)",
        f"notes:    {notes} ({tally.notes_created} created, {tally.notes_present} already present)",
        f"elapsed:  {elapsed_seconds:.1f} s",
        f"sign in as {DEMO_EMAIL} / {DEMO_PASSWORD}",
    ]
    lines += [f"FAILED: {failure}" for failure in tally.failures]
    return "\n".join(lines)


def _local_address(key: str) -> str:
    return f"127.0.0.1:{service_by_key(key).grpc_port}"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
