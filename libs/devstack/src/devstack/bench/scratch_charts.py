"""Emptying the charts CreateNote filled, so they never grow from run to run.

CreateNote writes to scratch patients of its own (bench.dataset). When the scenario
ends, all its levels and paths done, every scratch patient's notes are deleted
(DeleteAllNotes, one call per patient), outside the measured window; then the bench waits
until the note events of the scenario and of the deletions have been handled
(bench.event_backlog), so that work is not measured with the next scenario. A patient
whose chart could not be emptied is reported, not skipped over: its notes stay until a
later run empties the chart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc.aio

from devstack.api_session import ApiSession
from devstack.bench.event_backlog import EventBacklog
from medstation.patient.v1 import patient_service_pb2 as patient_pb
from medstation.patient.v1 import patient_service_pb2_grpc as patient_grpc

_CONCURRENCY = 8
# A chart holds thousands of notes after a long run, deleted in one transaction.
_TIMEOUT_SECONDS = 60.0


@dataclass
class EmptiedCharts:
    """What emptying the scratch charts did; `failures` quotes each patient it failed for."""

    patients: int
    notes_deleted: int = 0
    failures: list[str] = field(default_factory=list)

    def describe(self) -> str:
        done = (
            f"CreateNote wrote to {self.patients} scratch patients of its own, which no other "
            f"scenario reads; emptying their charts after it deleted "
            f"{self.notes_deleted:,} notes"
        )
        if not self.failures:
            return done
        return (
            f"{done}, but FAILED for {len(self.failures)} of them (their notes stay until a "
            f"later run empties them), first: {self.failures[0]}"
        )


async def empty_scratch_charts(
    session: ApiSession,
    patients: patient_grpc.PatientRecordServiceAsyncStub,
    patient_ids: Sequence[str],
    backlog: EventBacklog,
) -> EmptiedCharts:
    """Delete every note of each patient, _CONCURRENCY at a time, and wait out the events."""
    emptied = EmptiedCharts(len(patient_ids))
    queue = list(reversed(patient_ids))

    async def worker() -> None:
        while queue:
            patient_id = queue.pop()
            try:
                response = await patients.DeleteAllNotes(
                    patient_pb.DeleteAllNotesRequest(patient_id=patient_id),
                    metadata=await session.metadata(),
                    timeout=_TIMEOUT_SECONDS,
                )
            except grpc.aio.AioRpcError as error:
                emptied.failures.append(f"{patient_id}: {error.code().name}: {error.details()}")
            else:
                emptied.notes_deleted += response.deleted_count

    mark = await backlog.mark()
    await asyncio.gather(*(worker() for _ in range(min(_CONCURRENCY, len(patient_ids)))))
    await backlog.wait_handled(mark, emptied.notes_deleted)
    return emptied
