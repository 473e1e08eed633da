"""Starting, measuring and stopping the baselines of a run: the echo ceilings and the
FastAPI reference. Whatever cannot run here (a tool or a bench-only package missing, a
process that did not start) becomes a `skipped:` line; the scenarios run regardless.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from devstack import gateway_config
from devstack.bench.baselines import BaselineResult
from devstack.bench.ceilings import CeilingUnavailable, Tools, echo_stack, measure_ceilings
from devstack.bench.h2load import H2loadError, h2load_binary
from devstack.bench.plan import Endpoints, RunPlan
from devstack.bench.reference import ReferenceUnavailable, measure_reference, reference_app
from devstack.bench.wrk import WrkError

Log = Callable[[str], None]


async def run_ceilings(
    endpoints: Endpoints,
    plan: RunPlan,
    token: Callable[[], Awaitable[str]],
    wrk: str | None,
    *,
    workdir: Path,
    log: Log,
    skipped: list[str],
) -> list[BaselineResult]:
    tools = Tools(wrk, h2load_binary())
    try:
        async with echo_stack(
            gateway_config.repo_root(), endpoints.user_addr, workdir / "echo", token
        ) as stack:
            return await measure_ceilings(
                stack, plan, tools, token, workdir=workdir, log=log, skipped=skipped
            )
    except (CeilingUnavailable, H2loadError, WrkError) as error:
        skipped.append(f"echo ceilings: {error}")
        return []


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
