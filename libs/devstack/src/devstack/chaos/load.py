"""Load while a fault happens: idempotent reads, creates clients retry, and what each saw.

Reads (GetPatient, three in four; ListPatients) run through the bench's gRPC load
generator; every call is also recorded with its start time, outcome and latency, so a
scenario can tell when errors happened and whether any call outlived its deadline.
Creates (CreatePatient) are sent as a careful client does: with a request_id, retried
with the same one after UNAVAILABLE or DEADLINE_EXCEEDED; a patient whose create was
acknowledged must exist afterwards.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import grpc.aio

from devstack.bench.grpc_load import run_grpc_load
from devstack.chaos.api import CALL_TIMEOUT_SECONDS, Api, with_retries

# A careful client keeps retrying a create this long (the same request_id each time).
WRITE_RETRY_SECONDS = 20.0


@dataclass(frozen=True)
class Outcome:
    at: float  # time.monotonic() when the call was sent
    code: str  # "OK" or the gRPC status code's name
    seconds: float


@dataclass
class Outcomes:
    """Every call of one kind during a scenario."""

    items: list[Outcome] = field(default_factory=list)

    def add(self, at: float, code: str) -> None:
        self.items.append(Outcome(at, code, time.monotonic() - at))

    @property
    def requests(self) -> int:
        return len(self.items)

    @property
    def errors(self) -> int:
        return sum(1 for item in self.items if item.code != "OK")

    def kinds(self) -> Counter[str]:
        return Counter(item.code for item in self.items if item.code != "OK")

    def last_error_at(self) -> float | None:
        ends = (item.at + item.seconds for item in self.items if item.code != "OK")
        return max(ends, default=None)

    def slowest(self) -> float:
        return max((item.seconds for item in self.items), default=0.0)


@dataclass
class Writes:
    """Creates a client was told succeeded (after its own retries), and every attempt."""

    acknowledged: list[str] = field(default_factory=list)
    attempts: Outcomes = field(default_factory=Outcomes)
    failed: Counter[str] = field(default_factory=Counter)  # creates given up, by last code


async def read_load(
    api: Api, patient_ids: list[str], outcomes: Outcomes, *, concurrency: int, duration: float
) -> None:
    async def call(number: int) -> object:
        sent = time.monotonic()
        try:
            if number % 4 == 3:
                result: object = await api.list_patients()
            else:
                result = await api.get_patient(patient_ids[number % len(patient_ids)])
        except grpc.aio.AioRpcError as error:
            outcomes.add(sent, error.code().name)
            raise
        outcomes.add(sent, "OK")
        return result

    await run_grpc_load(
        call, concurrency=concurrency, duration=duration, call_timeout=CALL_TIMEOUT_SECONDS
    )


async def write_load(api: Api, writes: Writes, *, concurrency: int, duration: float) -> None:
    stop_at = time.monotonic() + duration

    async def writer(number: int) -> None:
        sequence = 0
        while time.monotonic() < stop_at:
            sequence += 1
            await create_one(api, writes, f"w{number}-{sequence}")

    await asyncio.gather(*(writer(number) for number in range(concurrency)))


async def create_one(api: Api, writes: Writes, label: str) -> None:
    request_id = str(uuid.uuid4())  # one per patient, the same on every retry

    async def attempt() -> str:
        sent = time.monotonic()
        try:
            patient = await api.create_patient(label, request_id)
        except grpc.aio.AioRpcError as error:
            writes.attempts.add(sent, error.code().name)
            raise
        writes.attempts.add(sent, "OK")
        return str(patient.id)

    try:
        writes.acknowledged.append(await with_retries(attempt, give_up_after=WRITE_RETRY_SECONDS))
    except grpc.aio.AioRpcError as error:
        writes.failed[error.code().name] += 1


async def missing_patients(api: Api, patient_ids: list[str]) -> list[str]:
    """The acknowledged patients that cannot be read back (NOT_FOUND after retries)."""
    missing: list[str] = []
    semaphore = asyncio.Semaphore(8)

    async def check(patient_id: str) -> None:
        async with semaphore:
            try:
                await with_retries(lambda: api.get_patient(patient_id), give_up_after=20)
            except grpc.aio.AioRpcError:
                missing.append(patient_id)

    await asyncio.gather(*(check(patient_id) for patient_id in patient_ids))
    return missing
