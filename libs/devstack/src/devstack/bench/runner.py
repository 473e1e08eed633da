"""One benchmark run: the baselines, then every scenario x path (gateway, direct) x
concurrency level, measured.

The stack's processes' memory is read first, before any load. Then the baselines (the
echo ceilings and the FastAPI reference, bench.baseline_runs), then for each scenario
and level: a warm-up at that concurrency (connections opened, caches and pools filled,
results discarded), then the measured run, bracketed by CPU snapshots of the processes
on the request path, by Envoy's rate-limit counter and by patient-record's patient
cache counters (bench.patient_cache). The row a target divides by the echo ceiling
(GetPatient from cache through the gateway at the target's level) has the echo through
the gateway measured again right before and right after it (its processes stay up,
idle, after the ceilings): the machine's speed drifts within minutes, and that target
reads the row against the same minute's echo. After the last level of a scenario that
wrote to the scratch patients (CreateNote), their charts are emptied
(bench.scratch_charts), its outcome noted in the report. Then the measurements with
clients of their own: streamed chat replies (bench.stream_runs) and summary jobs
(bench.summary_jobs); memory again; and, when asked, the soak (bench.soak). Nothing
here judges the numbers; the report (and bench.targets) does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from devstack.api_session import ApiSession
from devstack.bench import cpu, cpu_groups, memory, patient_cache, selection
from devstack.bench.baseline_runs import EchoBeside, run_ceilings, run_reference
from devstack.bench.baselines import CEILINGS, REFERENCE, BaselineResult
from devstack.bench.dataset import BENCH_CREDENTIALS, SCRATCH_PATIENTS, BenchData
from devstack.bench.event_backlog import EventBacklog, event_stream
from devstack.bench.gateway_stats import rate_limit, rate_limit_notes, rate_limited_count
from devstack.bench.grpc_load import run_grpc_load
from devstack.bench.load_stats import LoadStats
from devstack.bench.machine import machine_facts
from devstack.bench.plan import Endpoints, RunPlan
from devstack.bench.preparation import open_targets, prepare_data, services_up
from devstack.bench.results import BenchReport, RunResult
from devstack.bench.scenarios import (
    CHAT_SERVICE,
    PATIENT_SERVICE,
    STREAM_MESSAGE,
    SUMMARY_JOBS,
    SUMMARY_SERVICE,
    USER_SERVICE,
    GrpcTargets,
    Scenario,
    select,
)
from devstack.bench.scratch_charts import empty_scratch_charts
from devstack.bench.soak_run import SoakSetup, soak_stack
from devstack.bench.stream_runs import StreamResult, StreamSetup, measure_streams
from devstack.bench.summary_data import FreshPatients, batch_size, fresh_pool
from devstack.bench.summary_jobs import JobsResult, JobsSetup, measure_jobs
from devstack.bench.table import percent
from devstack.bench.targets import GET_PATIENT_CACHE, target_level
from devstack.bench.vias import VIA_GATEWAY
from devstack.bench.wrk import run_wrk, thread_count, wrk_binary
from devstack.postgres import analyze_databases
from devstack.services import SERVICES, service_by_key
from devstack.stack_probe import require_gateway, require_service

CALL_TIMEOUT_SECONDS = 10.0

Log = Callable[[str], None]


async def run_bench(
    endpoints: Endpoints,
    plan: RunPlan,
    *,
    command: str,
    workdir: Path,
    log: Log = print,
    notes: Sequence[str] = (),
) -> BenchReport:
    """Measure the baselines and every selected scenario the running stack can serve."""
    await require_gateway(endpoints.gateway_url)
    await require_service("user", endpoints.user_addr, service_by_key("user").proto_service)
    up = await services_up(endpoints)
    watched = memory.watched_processes(
        _service_addresses(endpoints, up), cpu_groups.port_of(endpoints.gateway_url)
    )
    idle = memory.snapshot(watched)
    timer = _PhaseTimer()
    async with contextlib.AsyncExitStack() as channels:
        user_channel, targets = await open_targets(channels, endpoints, up)
        session = ApiSession(user_channel, BENCH_CREDENTIALS)
        await session.sign_in()
        report = BenchReport(command, datetime.now(UTC), plan, [], select(plan.scenarios))
        report.notes += notes
        chosen = await selection.runnable(plan, endpoints, up)
        report.skipped += chosen.skipped
        report.notes += chosen.notes
        report.notes += rate_limit_notes(await rate_limit(endpoints.envoy_admin_url))
        data = await _prepare(session, targets, plan, chosen, up, report)
        await _analyze(endpoints.postgres_admin_url, up, report)
        wrk = wrk_binary()
        report.facts = await asyncio.to_thread(
            machine_facts, endpoints.postgres_admin_url, endpoints.redis_url, wrk
        )
        timer.end("preparing data")
        beside: EchoBeside | None = None
        if CEILINGS in chosen.baselines:
            ceilings, beside = await run_ceilings(
                endpoints, plan, session.access_token, wrk,
                keep=channels, workdir=workdir, log=log, skipped=report.skipped,
            )  # fmt: skip
            report.baselines += ceilings
        if REFERENCE in chosen.baselines:
            report.baselines += await run_reference(
                endpoints, plan, wrk, workdir=workdir, log=log, skipped=report.skipped
            )
        timer.end("baselines")
        measurer = _Measurer(
            endpoints, plan, session, targets, data, wrk, workdir, up, log, report.notes, beside
        )
        for scenario in chosen.scenarios:
            report.results += await measurer.scenario(scenario, _load_vias(plan.vias, wrk, report))
        report.baselines += measurer.beside_results
        timer.end("scenarios")
        if STREAM_MESSAGE in chosen.measurements:
            report.streams = await measurer.streams()
        if SUMMARY_JOBS in chosen.measurements:
            report.jobs = await measurer.jobs(report.skipped)
        timer.end("streams and jobs")
        report.memory = memory.MemoryReport(watched, idle, memory.snapshot(watched))
        if plan.soak_seconds:
            setup = SoakSetup(endpoints.gateway_url, session, data, wrk, workdir, up, watched)
            report.soak = await soak_stack(setup, plan, report, log)
            timer.end("soak")
    report.notes.append(f"time taken: {timer.describe()}")
    return report


class _PhaseTimer:
    """How long each part of a run took, for the report (the 10-minute budget of `make bench`)."""

    def __init__(self) -> None:
        self._mark = time.monotonic()
        self._phases: list[tuple[str, float]] = []

    def end(self, phase: str) -> None:
        now = time.monotonic()
        self._phases.append((phase, now - self._mark))
        self._mark = now

    def describe(self) -> str:
        return ", ".join(f"{phase} {seconds:.0f} s" for phase, seconds in self._phases)


async def _analyze(admin_url: str, up: frozenset[str], report: BenchReport) -> None:
    """Statistics for the data just loaded: without them the services' prepared plans keep
    the planner's guesses for empty tables (this machine's PostgreSQL runs without
    autovacuum, so nothing else would ever analyze them)."""
    databases = [s.database for s in SERVICES if s.key == USER_SERVICE or s.key in up]
    analyzed = await asyncio.to_thread(analyze_databases, admin_url, databases)
    if analyzed:
        report.notes.append(f"data: ANALYZE after loading it ({', '.join(analyzed)})")


async def _prepare(
    session: ApiSession,
    targets: GrpcTargets,
    plan: RunPlan,
    chosen: selection.Selection,
    up: frozenset[str],
    report: BenchReport,
) -> BenchData:
    soaks = bool(plan.soak_seconds) and PATIENT_SERVICE in up
    data = await prepare_data(
        session,
        targets,
        patients=plan.patients if chosen.needs_patients or soaks else 0,
        chats=plan.chats if chosen.sends_messages else 0,
        warm_summaries_first=chosen.warms_summaries,
        scratch_patients=SCRATCH_PATIENTS if chosen.writes_scratch_notes else 0,
    )
    report.patients = len(data.patient_ids)
    if data.chat_ids:
        about = "each about one bench patient" if data.patient_ids else "about no patient"
        report.notes.append(f"chat: {len(data.chat_ids)} bench chats, {about}, offline model")
    if summarized := len(data.summarized_patient_ids):
        report.notes.append(f"summaries: stored before the runs for {summarized} bench patients")
    return data


def _service_addresses(endpoints: Endpoints, up: frozenset[str]) -> dict[str, str]:
    """The stack's service processes to watch: every service up, and the summary worker."""
    addresses = {"user": endpoints.user_addr}
    addresses |= {
        key: address for key in sorted(up) if (address := endpoints.address(key)) is not None
    }
    if SUMMARY_SERVICE in up and endpoints.summary_worker_addr:
        addresses["summary-worker"] = endpoints.summary_worker_addr
    return addresses


def _load_vias(wanted: Sequence[str], wrk: str | None, report: BenchReport) -> list[str]:
    if VIA_GATEWAY in wanted and wrk is None:
        reason = "every wrk run through the gateway: wrk is not installed (`make bench-deps`)"
        if reason not in report.skipped:
            report.skipped.append(reason)
        return [via for via in wanted if via != VIA_GATEWAY]
    return list(wanted)


class _Measurer:
    def __init__(
        self,
        endpoints: Endpoints,
        plan: RunPlan,
        session: ApiSession,
        targets: GrpcTargets,
        data: BenchData,
        wrk: str | None,
        workdir: Path,
        up: frozenset[str],
        log: Log,
        notes: list[str],
        beside: EchoBeside | None = None,
    ) -> None:
        self._endpoints = endpoints
        self._plan = plan
        self._session = session
        self._targets = targets
        self._data = data
        self._wrk = wrk
        self._workdir = workdir
        self._up = up
        self._log = log
        self._notes = notes  # the report's: what emptying the scratch charts did
        self._beside = beside
        self.beside_results: list[BaselineResult] = []

    async def scenario(self, scenario: Scenario, vias: Sequence[str]) -> list[RunResult]:
        meter = cpu.CpuMeter(self._readers(scenario.service, scenario.upstreams))
        fresh = self._fresh_patients() if scenario.fresh_summaries else None
        # One cursor through the cycle for the whole scenario: each run goes on where the
        # previous one stopped instead of repeating the start of the cycle.
        # (A fresh-summary run walks a batch of its own from the start instead.)
        cursor = 0
        rate: float | None = None  # of the last run: sizes the next fresh batch
        results = []
        try:
            for via in vias:
                for level in self._plan.concurrency:
                    if self._plan.warmup > 0:
                        data = await self._run_data(fresh, rate, self._plan.warmup, level)
                        start = cursor if fresh is None else 0
                        warmup = await self._load(
                            scenario, via, level, self._plan.warmup, start, data
                        )
                        cursor += self._advance(via, level, warmup.requests)
                        rate = warmup.requests / warmup.seconds if warmup.seconds else None
                    data = await self._run_data(fresh, rate, self._plan.duration, level)
                    start = cursor if fresh is None else 0
                    beside = self._beside_echo(scenario, via, level)
                    if beside is not None:
                        self.beside_results.append(await beside(self._plan.warmup))
                    result = await self._measured(scenario, via, level, meter, start, data)
                    if beside is not None:
                        self.beside_results.append(await beside(0))  # warm from the row
                    cursor += self._advance(via, level, result.stats.requests)
                    rate = result.stats.requests / result.stats.seconds or None
                    if fresh is not None:
                        result = replace(result, fresh_batch=len(data.patient_ids))
                    self._log(_line(result))
                    results.append(result)
        finally:
            if fresh is not None:
                await fresh.restore()
            if scenario.writes_scratch_notes:
                await self._empty_scratch_charts()
        return results

    def _beside_echo(
        self, scenario: Scenario, via: str, level: int
    ) -> Callable[[float], Awaitable[BaselineResult]] | None:
        """For the row a target divides by the echo ceiling (GetPatient from cache through
        the gateway at the target's level): the echo's measurement, to run right before
        and right after it. None for every other row, or without the echo gateway."""
        beside = self._beside
        plan = self._plan
        if (
            beside is None
            or scenario.key != GET_PATIENT_CACHE
            or via != VIA_GATEWAY
            or level != target_level(plan.concurrency)
        ):
            return None

        async def measure(warmup: float) -> BaselineResult:
            return await beside.measure(level, warmup=warmup, duration=plan.duration, log=self._log)

        return measure

    async def streams(self) -> list[StreamResult]:
        setup = StreamSetup(
            self._endpoints.gateway_url,
            self._targets.chat_stub(),
            self._session,
            self._data,
            self._readers(CHAT_SERVICE, (PATIENT_SERVICE,)),
            CALL_TIMEOUT_SECONDS,
        )
        plan = self._plan
        return await measure_streams(
            setup,
            plan.vias,
            plan.concurrency,
            warmup=plan.warmup,
            duration=plan.duration,
            log=self._log,
        )

    async def jobs(self, skipped: list[str]) -> list[JobsResult]:
        endpoints = self._endpoints
        if endpoints.summary_addr is None or endpoints.summary_worker_addr is None:
            raise RuntimeError("summary jobs measured without the summary service or worker")
        setup = JobsSetup(
            self._targets.summary_stub(),
            self._session,
            self._fresh_patients(),
            endpoints.summary_addr,
            endpoints.summary_worker_addr,
            tuple(self._addresses((PATIENT_SERVICE,))),
            endpoints.redis_url,
            self._workdir,
        )
        plan = self._plan
        return await measure_jobs(setup, plan.workers, plan.jobs, log=self._log, skipped=skipped)

    def _fresh_patients(self) -> FreshPatients:
        return FreshPatients(
            self._session,
            self._targets.patient_stub(),
            fresh_pool(self._data.patient_ids),
            self._data.note_bodies[0],
            self._event_backlog(),
        )

    async def _empty_scratch_charts(self) -> None:
        emptied = await empty_scratch_charts(
            self._session,
            self._targets.patient_stub(),
            self._data.note_patient_ids,
            self._event_backlog(),
        )
        self._log(emptied.describe())
        self._notes.append(emptied.describe())

    def _event_backlog(self) -> EventBacklog:
        return EventBacklog(
            event_stream(self._endpoints.redis_url, self._endpoints.summary_worker_addr)
        )

    async def _run_data(
        self, fresh: FreshPatients | None, rate: float | None, seconds: float, level: int
    ) -> BenchData:
        if fresh is None:
            return self._data
        size = batch_size(rate, seconds, level, fresh.pool_size)
        return replace(self._data, patient_ids=await fresh.batch(size))

    async def _measured(
        self,
        scenario: Scenario,
        via: str,
        level: int,
        meter: cpu.CpuMeter,
        cursor: int,
        data: BenchData,
    ) -> RunResult:
        admin = self._endpoints.envoy_admin_url
        metrics = self._endpoints.patient_metrics_url
        limited_before = await rate_limited_count(admin)
        reads_before = await patient_cache.cache_reads(metrics)
        before = meter.snapshot()
        stats = await self._load(scenario, via, level, self._plan.duration, cursor, data)
        after = meter.snapshot()
        reads_after = await patient_cache.cache_reads(metrics)
        limited_after = await rate_limited_count(admin)
        limited = (
            None
            if limited_before is None or limited_after is None
            else limited_after - limited_before
        )
        return RunResult(
            scenario,
            via,
            level,
            stats,
            cpu.CpuMeter.spent(before, after),
            limited,
            patient_cache.hit_ratio(reads_before, reads_after),
        )

    async def _load(
        self,
        scenario: Scenario,
        via: str,
        level: int,
        duration: float,
        start: int,
        data: BenchData,
    ) -> LoadStats:
        if via == VIA_GATEWAY and self._wrk is not None:
            return await run_wrk(
                self._wrk,
                self._endpoints.gateway_url,
                scenario.http_cycle(data),
                await self._session.access_token(),
                concurrency=level,
                duration=duration,
                start=start,
                workdir=self._workdir,
            )
        call = scenario.grpc_call(
            self._targets, data, await self._session.metadata(), CALL_TIMEOUT_SECONDS
        )
        return await run_grpc_load(
            call,
            concurrency=level,
            duration=duration,
            call_timeout=CALL_TIMEOUT_SECONDS,
            start=start,
        )

    def _advance(self, via: str, level: int, requests: int) -> int:
        by_wrk = via == VIA_GATEWAY and self._wrk is not None
        return cycle_advance(requests, walkers=thread_count(level) if by_wrk else 1)

    def _readers(self, service: str, upstreams: Sequence[str]) -> dict[str, cpu.CpuReader]:
        return cpu_groups.request_path_readers(
            self._endpoints.gateway_url,
            self._endpoints.address(service) or self._endpoints.user_addr,
            self._addresses(upstreams),
            self._endpoints.redis_url,
        )

    def _addresses(self, services: Sequence[str]) -> list[str]:
        """The addresses of those of `services` that are up."""
        return [
            address
            for service in services
            if service in self._up and (address := self._endpoints.address(service))
        ]


def cycle_advance(requests: int, *, walkers: int) -> int:
    """How far a run of `requests` took the cycle's cursor, when `walkers` walk the cycle
    each from its own point (wrk's threads, a stride apart; the gRPC generator is one
    walker). Moving the cursor by all the requests would start the next run where
    another walker had just been: GetPatient from PostgreSQL would then re-read what the
    patient cache still holds."""
    return requests // max(1, walkers)


def _line(result: RunResult) -> str:
    stats = result.stats
    p50 = f"{stats.p50_seconds * 1e3:.2f}" if stats.p50_seconds is not None else "-"
    p99 = f"{stats.p99_seconds * 1e3:.2f}" if stats.p99_seconds is not None else "-"
    return (
        f"{result.scenario.title:<24} {result.via:<8} c={result.concurrency:<3} "
        f"{stats.ok_per_second:9.1f} req/s  p50 {p50} ms  p99 {p99} ms  "
        f"errors {stats.errors}  cache hits {percent(result.cache_hit_ratio)}"
    )
