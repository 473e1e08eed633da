"""What every scenario shares: the stack, a signed-in clinician, data to read, and timings."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from devstack.chaos.api import Api, with_retries
from devstack.chaos.stack import ChaosStack, wait_healthz

# How long the gateway may take to see every host healthy again after a restart.
HEALTHY_AGAIN_SECONDS = 60.0


@dataclass(frozen=True)
class Timing:
    """How much load, when the fault strikes, how many jobs: the full run or the short one."""

    load_seconds: float
    fault_after: float
    read_concurrency: int
    write_concurrency: int
    jobs: int
    chart_notes: int


FULL = Timing(
    load_seconds=8.0, fault_after=2.0, read_concurrency=8, write_concurrency=2, jobs=16,
    chart_notes=150,
)  # fmt: skip
SHORT = Timing(
    load_seconds=4.0, fault_after=1.0, read_concurrency=6, write_concurrency=2, jobs=8,
    chart_notes=120,
)  # fmt: skip


@dataclass
class World:
    stack: ChaosStack
    api: Api
    timing: Timing
    read_ids: list[str]  # patients the read load cycles through
    chart_ids: list[str]  # patients with long charts: summary jobs take a while on them
    chat_id: str

    @property
    def gateway_grpc(self) -> str:
        return self.stack.gateway_url.removeprefix("http://")

    async def all_healthy(self) -> None:
        """Until the gateway reports every host of every cluster healthy."""
        await asyncio.to_thread(wait_healthz, self.stack.gateway_url, HEALTHY_AGAIN_SECONDS)

    async def rest(self) -> httpx.AsyncClient:
        token = await self.api.session.access_token()
        return httpx.AsyncClient(
            base_url=self.stack.gateway_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=20,
        )


async def prepare(stack: ChaosStack, timing: Timing) -> World:
    """A clinician, patients to read, long charts to summarize, a chat about a patient."""
    api = await Api.sign_in(stack.gateway_url.removeprefix("http://"))
    read_ids = [str((await api.create_patient(f"r{n}")).id) for n in range(30)]
    chart_ids = [str((await api.create_patient(f"c{n}")).id) for n in range(4)]
    semaphore = asyncio.Semaphore(8)

    async def note(patient_id: str, number: int) -> None:
        async with semaphore:
            text = note_text(number)
            await with_retries(lambda: api.create_note(patient_id, text), give_up_after=30)

    await asyncio.gather(*(note(pid, n) for pid in chart_ids for n in range(timing.chart_notes)))
    model_id = await api.first_model_id()
    chat = await api.create_chat(model_id, chart_ids[0])
    return World(stack, api, timing, read_ids, chart_ids, str(chat.id))


def note_text(number: int) -> str:
    """A short SOAP note; no real person's data."""
    return (
        f"S: productive cough for {number % 9 + 1} days, no chest pain\n"
        f"O: BP {118 + number % 20}/{76 + number % 9}, temp 37.{number % 9} C\n"
        "A: acute bronchitis\n"
        f"P: fluids, paracetamol 1 g as needed, review in {number % 14 + 1} days"
    )
