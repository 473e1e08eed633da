"""The soak of a run (`--soak SECONDS`): its capacity from this run's GetPatient rows (or
a short probe when none ran), then bench.soak at half of it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack.api_session import ApiSession
from devstack.bench import memory
from devstack.bench.dataset import BenchData
from devstack.bench.plan import RunPlan
from devstack.bench.results import BenchReport, RunResult
from devstack.bench.scenarios import PATIENT_SERVICE, SCENARIOS
from devstack.bench.soak import CONNECTIONS, SoakResult, run_soak
from devstack.bench.vias import VIA_GATEWAY
from devstack.bench.wrk import run_wrk

# The GetPatient rows a soak's capacity is read from: first the one the soak repeats.
SOAK_CAPACITY_SCENARIOS = ("get_patient_miss", "get_patient_hit")


@dataclass(frozen=True)
class SoakSetup:
    gateway_url: str
    session: ApiSession
    data: BenchData
    wrk: str | None
    workdir: Path
    up: frozenset[str]
    watched: list[memory.Watched]


def soak_capacity(results: Sequence[RunResult]) -> tuple[float, str] | None:
    """The soak's full rate: GetPatient's gateway peak in this run, and what it was."""
    for key in SOAK_CAPACITY_SCENARIOS:
        rows = [r for r in results if r.scenario.key == key and r.via == VIA_GATEWAY]
        if rows:
            peak = max(rows, key=lambda r: r.stats.ok_per_second)
            where = f"{peak.scenario.title} through the gateway at concurrency {peak.concurrency}"
            return peak.stats.ok_per_second, where
    return None


async def soak_stack(
    setup: SoakSetup, plan: RunPlan, report: BenchReport, log: Callable[[str], None]
) -> SoakResult | None:
    """GetPatient (a different patient each request) at half of the measured capacity."""
    if setup.wrk is None or PATIENT_SERVICE not in setup.up or not setup.data.patient_ids:
        report.skipped.append("soak: it needs wrk, the patient-record service and its patients")
        return None
    key = SOAK_CAPACITY_SCENARIOS[0]
    cycle = next(s for s in SCENARIOS if s.key == key).http_cycle(setup.data)
    found = soak_capacity(report.results)
    if found is None:
        probe = await run_wrk(
            setup.wrk, setup.gateway_url, cycle, await setup.session.access_token(),
            concurrency=CONNECTIONS, duration=plan.duration, start=0, workdir=setup.workdir,
        )  # fmt: skip
        found = (probe.ok_per_second, f"a {CONNECTIONS}-connection probe before the soak")
    capacity, source = found
    seconds = plan.soak_seconds or 0.0
    result = SoakResult(seconds, capacity, source, setup.watched, memory.snapshot(setup.watched))
    return await run_soak(
        result,
        setup.wrk,
        setup.gateway_url,
        cycle,
        setup.session.access_token,
        workdir=setup.workdir,
        log=log,
    )
