"""Starting, measuring and stopping the baselines of a run: the echo ceilings and the
FastAPI reference. Whatever cannot run here (a tool or a bench-only package missing, a
process that did not start) becomes a `skipped:` line; the scenarios run regardless.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from devstack import gateway_config
from devstack.bench import cpu
from devstack.bench.baselines import ECHO_GATEWAY_BESIDE, BaselineResult, LoadRun, measure_levels
from devstack.bench.ceilings import (
    CeilingUnavailable,
    Tools,
    echo_cpu_readers,
    echo_stack,
    echo_through_gateway,
    measure_ceilings,
)
from devstack.bench.h2load import H2loadError, h2load_binary
from devstack.bench.plan import Endpoints, RunPlan
from devstack.bench.reference import ReferenceUnavailable, measure_reference, reference_app
from devstack.bench.wrk import WrkError

Log = Callable[[str], None]


@dataclass(frozen=True)
class EchoBeside:
    """The echo through its gateway, kept up after the ceilings to be measured again
    beside a scenario row (`ECHO_GATEWAY_BESIDE`)."""

    load: LoadRun
    readers: dict[str, cpu.CpuReader]

    async def measure(
        self, level: int, *, warmup: float, duration: float, log: Log
    ) -> BaselineResult:
        [result] = await measure_levels(
            ECHO_GATEWAY_BESIDE,
            [level],
            warmup=warmup,
            duration=duration,
            load=self.load,
            readers=self.readers,
            log=log,
        )
        return result


async def run_ceilings(
    endpoints: Endpoints,
    plan: RunPlan,
    token: Callable[[], Awaitable[str]],
    wrk: str | None,
    *,
    keep: contextlib.AsyncExitStack,
    workdir: Path,
    log: Log,
    skipped: list[str],
) -> tuple[list[BaselineResult], EchoBeside | None]:
    """The ceilings, and the echo gateway to measure again later: its processes stay up
    (idle) until `keep` closes."""
    tools = Tools(wrk, h2load_binary())
    try:
        stack = await keep.enter_async_context(
            echo_stack(gateway_config.repo_root(), endpoints.user_addr, workdir / "echo", token)
        )
        results = await measure_ceilings(
            stack, plan, tools, token, workdir=workdir, log=log, skipped=skipped
        )
    except (CeilingUnavailable, H2loadError, WrkError) as error:
        skipped.append(f"echo ceilings: {error}")
        return [], None
    load = echo_through_gateway(stack, tools, token, workdir=workdir)
    beside = None if load is None else EchoBeside(load, echo_cpu_readers(stack))
    return results, beside


async def run_reference(
    endpoints: Endpoints,
    plan: RunPlan,
    wrk: str | None,
    *,
    workdir: Path,
    log: Log,
    skipped: list[str],
) -> list[BaselineResult]:
    if wrk is None:
        skipped.append("FastAPI reference: wrk is not installed (`make bench-deps`)")
        return []
    try:
        async with reference_app(
            endpoints.postgres_admin_url, plan.patients, workdir / "reference"
        ) as app:
            return await measure_reference(app, plan, wrk, workdir=workdir, log=log)
    except (ReferenceUnavailable, WrkError) as error:
        skipped.append(f"FastAPI reference: {error}")
        return []
