"""The summary scenarios' data: patients whose summary is stored, and patients whose is not.

Stored ("reuse"): GetSummary once for each of the first REUSE_PATIENTS bench patients
before measuring; afterwards every request finds the summary of the unchanged chart.

Not stored ("fresh"): a summary is stored per chart fingerprint (the notes' ids and
contents, the demographics, the model), so once a bench run has summarized a patient,
that chart is never fresh again, and the bench patients are re-used by every run. A run
therefore makes its patients fresh itself: just before each run it gives every patient
of that run's batch one new SOAP note (a new note id: a chart no summary was written
for), and when the scenario ends it deletes those notes again, so the bench patients
keep the charts `make bench` seeded. The batch is sized from the rate seen so far, with
a margin; the report says when a run made more requests than its batch had patients.
Both steps are outside the measured window, and each is followed by a wait until the
note events it caused (patient-record's outbox, the summary worker marking old summaries
stale) have been handled (bench.event_backlog), so that work is not measured with the
next run.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import grpc.aio

from devstack.api_session import ApiSession
from devstack.bench.dataset import BenchDataError
from devstack.bench.event_backlog import EventBacklog
from medstation.patient.v1 import patient_service_pb2 as patient_pb
from medstation.patient.v1 import patient_service_pb2_grpc as patient_grpc
from medstation.summary.v1 import summary_service_pb2 as summary_pb
from medstation.summary.v1 import summary_service_pb2_grpc as summary_grpc

REUSE_PATIENTS = 100
# Before the first run of a fresh scenario nothing was measured yet: a guess, on the high side.
FIRST_RATE_GUESS = 50.0
BATCH_MARGIN = 1.5
_CONCURRENCY = 16
_TIMEOUT_SECONDS = 30.0
_T = TypeVar("_T")


def reuse_pool(patient_ids: Sequence[str]) -> tuple[str, ...]:
    return tuple(patient_ids[:REUSE_PATIENTS])


def fresh_pool(patient_ids: Sequence[str]) -> tuple[str, ...]:
    """The patients fresh batches come from: those not kept summarized, if there are any."""
    rest = tuple(patient_ids[REUSE_PATIENTS:])
    return rest or tuple(patient_ids)


def batch_size(rate: float | None, seconds: float, concurrency: int, pool: int) -> int:
    """Patients for a run of `seconds` at about `rate` req/s, with a margin; at most `pool`."""
    expected = (rate if rate is not None else FIRST_RATE_GUESS) * seconds
    return max(1, min(pool, math.ceil(expected * BATCH_MARGIN) + 2 * concurrency))


async def warm_summaries(
    session: ApiSession,
    summaries: summary_grpc.SummaryServiceAsyncStub,
    patient_ids: Sequence[str],
) -> None:
    """Make sure each patient's current chart has a stored summary."""

    async def summarize(patient_id: str) -> None:
        await summaries.GetSummary(
            summary_pb.GetSummaryRequest(patient_id=patient_id),
            metadata=await session.metadata(),
            timeout=_TIMEOUT_SECONDS,
        )

    await _each(patient_ids, summarize, "summarizing the reuse patients")


class FreshPatients:
    """Hands out batches of patients whose current chart has no stored summary."""

    def __init__(
        self,
        session: ApiSession,
        patients: patient_grpc.PatientRecordServiceAsyncStub,
        pool: Sequence[str],
        note_body: str,
        backlog: EventBacklog,
    ) -> None:
        if not pool:
            raise ValueError("fresh summaries need at least one patient")
        self._backlog = backlog
        self._session = session
        self._patients = patients
        self._pool = tuple(pool)
        self._note_body = note_body
        self._next = 0
        self._added: list[tuple[str, str]] = []  # (patient id, note id) to delete again

    @property
    def pool_size(self) -> int:
        return len(self._pool)

    async def batch(self, size: int) -> tuple[str, ...]:
        """The next `size` patients of the pool (round robin), each with a new note."""
        chosen = tuple(self._pool[(self._next + i) % len(self._pool)] for i in range(size))
        self._next = (self._next + size) % len(self._pool)

        async def add_note(patient_id: str) -> None:
            note = await self._patients.CreateNote(
                patient_pb.CreateNoteRequest(patient_id=patient_id, content=self._note_body),
                metadata=await self._session.metadata(),
                timeout=_TIMEOUT_SECONDS,
            )
            self._added.append((patient_id, note.id))

        mark = await self._backlog.mark()
        await _each(chosen, add_note, "making patients fresh for a summary")
        await self._backlog.wait_handled(mark, len(chosen))
        return chosen

    async def restore(self) -> None:
        """Delete every note this object added (the charts are as seeded again)."""
        added, self._added = self._added, []

        async def delete(pair: tuple[str, str]) -> None:
            patient_id, note_id = pair
            await self._patients.DeleteNote(
                patient_pb.DeleteNoteRequest(patient_id=patient_id, id=note_id),
                metadata=await self._session.metadata(),
                timeout=_TIMEOUT_SECONDS,
            )

        mark = await self._backlog.mark()
        await _each(added, delete, "deleting the notes that made patients fresh")
        await self._backlog.wait_handled(mark, len(added))


async def _each(items: Sequence[_T], action: Callable[[_T], Awaitable[None]], what: str) -> None:
    """`action` on every item, _CONCURRENCY at a time; the first failure is raised."""
    queue = list(reversed(items))
    failures: list[str] = []

    async def worker() -> None:
        while queue and not failures:
            item = queue.pop()
            try:
                await action(item)
            except grpc.aio.AioRpcError as error:
                failures.append(f"{error.code().name}: {error.details()}")

    await asyncio.gather(*(worker() for _ in range(min(_CONCURRENCY, len(items)))))
    if failures:
        raise BenchDataError(f"{what} failed: {failures[0]}")
