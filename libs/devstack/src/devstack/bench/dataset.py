"""The data a benchmark reads and writes: its own clinician and that clinician's patients.

Kept apart from the demo data set (another account, request-id namespace and MRN prefix)
so `make bench` never changes what `make seed` loaded. A re-run first lists the
clinician's patients, a few calls, and only seeds (idempotently) when too few are there.

CreateNote writes to scratch patients of its own (a namespace and MRN prefix of their
own again, charts seeded empty): written to the patients the other scenarios read, its
thousand-odd notes a second would grow the charts that GetSummary, the chat and the
summary jobs read, run after run. Listing tells the two apart by MRN prefix, whatever
order they were made in; bench.scratch_charts empties the scratch charts after CreateNote.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from devstack.api_session import ApiSession, Credentials
from devstack.demo_people import namespace_uuid, patient_spec
from devstack.progress import ProgressBar
from devstack.seed import CALL_TIMEOUT_SECONDS, DataSetPlan, seed_data_set
from devstack.soap_notes import notes_for, notes_until
from medstation.patient.v1 import patient_service_pb2 as patient_pb
from medstation.patient.v1 import patient_service_pb2_grpc as patient_grpc

BENCH_CREDENTIALS = Credentials(
    "bench.clinician@medstation.local",
    "bench-clinician-password",
    "Dr Bench Clinician",
)
BENCH_NAMESPACE = "bench"
BENCH_MRN_PREFIX = "BN"
SCRATCH_NAMESPACE = "bench-scratch"
SCRATCH_MRN_PREFIX = "BS"
# One per request in flight at the highest default level (64), so concurrent CreateNotes
# write to different charts, as they did across the bench patients; few enough to make
# in about a second.
SCRATCH_PATIENTS = 64
_SEED_CONCURRENCY = 16
_PAGE_SIZE = 100
_NOTE_BODIES = 8
_SEARCH_QUERIES = 16


class BenchDataError(RuntimeError):
    """The bench patients could not be made; the message quotes the first failures."""


@dataclass(frozen=True)
class BenchData:
    """Patients the bench clinician may read, SOAP texts for CreateNote and misspelled
    surnames to search for; the chats and questions of the chat scenarios, the patients
    whose summary is stored and the scratch patients CreateNote writes to (filled in by
    bench.preparation when those scenarios run)."""

    patient_ids: tuple[str, ...]
    note_bodies: tuple[str, ...]
    search_queries: tuple[str, ...] = ()
    chat_ids: tuple[str, ...] = ()
    questions: tuple[str, ...] = ()
    summarized_patient_ids: tuple[str, ...] = ()
    note_patient_ids: tuple[str, ...] = ()


async def ensure_bench_data(
    session: ApiSession,
    patients: patient_grpc.PatientRecordServiceAsyncStub | None,
    count: int,
    progress_stream: TextIO | None = None,
) -> BenchData:
    """`count` patients with notes (none without the patient service), made if missing."""
    if patients is None or count == 0:
        return BenchData((), ())
    ids = await _listed_patient_ids(session, patients, count)
    if len(ids) < count:
        plan = DataSetPlan(namespace_uuid(BENCH_NAMESPACE), count, BENCH_MRN_PREFIX)
        progress = ProgressBar("bench patients", count, progress_stream or sys.stderr)
        try:
            ids = await _seeded_patient_ids(session, patients, plan, progress)
        finally:
            progress.close()
    return BenchData(tuple(ids[:count]), _note_bodies(), fuzzy_queries(count))


async def ensure_scratch_patients(
    session: ApiSession, patients: patient_grpc.PatientRecordServiceAsyncStub, count: int
) -> tuple[str, ...]:
    """`count` scratch patients for CreateNote, made if missing; their charts are not seeded."""
    plan = DataSetPlan(
        namespace_uuid(SCRATCH_NAMESPACE), count, SCRATCH_MRN_PREFIX, with_notes=False
    )
    return tuple(await _seeded_patient_ids(session, patients, plan, progress=None))


async def _listed_patient_ids(
    session: ApiSession, patients: patient_grpc.PatientRecordServiceAsyncStub, count: int
) -> list[str]:
    """The first `count` bench patients by creation, the scratch patients left out."""
    ids: list[str] = []
    token = ""
    # Bounded: enough pages for `count` and the scratch patients among them, plus one for
    # a partly filled first page.
    for _ in range((count + SCRATCH_PATIENTS) // _PAGE_SIZE + 2):
        page = await patients.ListPatients(
            patient_pb.ListPatientsRequest(
                page_size=_PAGE_SIZE, page_token=token, order_by="created_at"
            ),
            metadata=await session.metadata(),
            timeout=CALL_TIMEOUT_SECONDS,
        )
        ids += [p.id for p in page.patients if p.mrn.startswith(BENCH_MRN_PREFIX)]
        token = page.next_page_token
        if not token or len(ids) >= count:
            break
    return ids


async def _seeded_patient_ids(
    session: ApiSession,
    patients: patient_grpc.PatientRecordServiceAsyncStub,
    plan: DataSetPlan,
    progress: ProgressBar | None,
) -> list[str]:
    tally = await seed_data_set(
        session, patients, plan, concurrency=_SEED_CONCURRENCY, progress=progress
    )
    if tally.failures:
        raise BenchDataError(
            f"{len(tally.failures)} bench patients or notes failed, first: {tally.failures[0]}"
        )
    return tally.patient_ids


def _note_bodies() -> tuple[str, ...]:
    namespace = namespace_uuid(BENCH_NAMESPACE)
    until = notes_until(datetime.now(UTC))
    bodies = [
        note.content
        for index in range(_NOTE_BODIES)
        for note in notes_for(namespace, patient_spec(namespace, index, BENCH_MRN_PREFIX), until)
    ]
    return tuple(bodies[:_NOTE_BODIES])


def fuzzy_queries(patients: int) -> tuple[str, ...]:
    """Surnames of the first bench patients with a letter typed twice ("Garrcia"): a typo
    pg_trgm's strict word similarity still matches (checked on the bench's names)."""
    namespace = namespace_uuid(BENCH_NAMESPACE)
    queries = []
    for index in range(min(patients, _SEARCH_QUERIES)):
        surname = patient_spec(namespace, index, BENCH_MRN_PREFIX).name.split()[-1]
        first_part = surname.split("-")[0]  # of a double-barrelled one
        middle = len(first_part) // 2
        queries.append(first_part[: middle + 1] + first_part[middle:])
    return tuple(queries)
