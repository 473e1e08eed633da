"""One benchmark run: every scenario x path (gateway, direct) x concurrency level, measured.

For each level: a warm-up at that concurrency (connections opened, caches and pools
filled, results discarded), then the measured run, bracketed by CPU snapshots of the
processes on the request path and by Envoy's rate-limit counter. Nothing here judges the
numbers; the report shows them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import grpc.aio

from devstack.api_session import ApiSession
from devstack.bench import cpu, patient_cache
from devstack.bench.dataset import BENCH_CREDENTIALS, BenchData, ensure_bench_data
from devstack.bench.gateway_stats import rate_limited_count
from devstack.bench.grpc_load import run_grpc_load
from devstack.bench.load_stats import LoadStats
from devstack.bench.machine import machine_facts
from devstack.bench.scenarios import PATIENT_SERVICE, GrpcTargets, Scenario, select
from devstack.bench.wrk import run_wrk, wrk_binary
from devstack.services import service_by_key
from devstack.stack_probe import require_gateway, require_service, service_status
from medstation.patient.v1 import patient_service_pb2_grpc as patient_grpc
from medstation.user.v1 import user_service_pb2_grpc as user_grpc

VIA_GATEWAY = "gateway"
VIA_DIRECT = "direct"
VIAS = (VIA_GATEWAY, VIA_DIRECT)
VIA_LABELS = {VIA_GATEWAY: "gateway · REST · wrk", VIA_DIRECT: "direct · gRPC · grpc.aio"}
CPU_GROUPS = ("gateway", "service", "postgres", "redis", "load generator")
CALL_TIMEOUT_SECONDS = 10.0
_REDIS_PORT = 6379

Log = Callable[[str], None]


@dataclass(frozen=True)
class Endpoints:
    """Where the stack under test listens; nothing assumes the `make run` ports."""

    gateway_url: str
    envoy_admin_url: str | None
    user_addr: str
    patient_addr: str | None  # None: no patient-record service to benchmark
    patient_required: bool  # its checkout exists, so it must be serving
    patient_metrics_url: str | None  # its Prometheus endpoint: cache hit/miss counters
    postgres_admin_url: str
    redis_url: str


@dataclass(frozen=True)
class RunPlan:
    duration: float
    warmup: float
    concurrency: tuple[int, ...]
    scenarios: list[str] | None  # None: all
    vias: tuple[str, ...]
    patients: int


@dataclass(frozen=True)
class RunResult:
    scenario: Scenario
    via: str
    concurrency: int
    stats: LoadStats
    cpu_seconds: dict[str, float]
    rate_limited: int | None  # 429s Envoy's local rate limiter answered during the run
    cache_hit_ratio: float | None  # of the patient cache's reads during the run

    def cpu_us_per_request(self, group: str) -> float | None:
        """CPU per successful request: what a useful answer cost (failures included)."""
        if not self.stats.ok or group not in self.cpu_seconds:
            return None
        return self.cpu_seconds[group] * 1e6 / self.stats.ok


@dataclass
class BenchReport:
    command: str
    started_at: datetime
    plan: RunPlan
    facts: list[tuple[str, str]]
    scenarios: list[Scenario]
    results: list[RunResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    patients: int = 0


async def run_bench(
    endpoints: Endpoints, plan: RunPlan, *, command: str, workdir: Path, log: Log = print
) -> BenchReport:
    """Measure every selected scenario that the running stack can serve."""
    scenarios = select(plan.scenarios)
    await require_gateway(endpoints.gateway_url)
    await require_service("user", endpoints.user_addr, service_by_key("user").proto_service)
    patient_up = await _patient_service_up(endpoints)
    async with contextlib.AsyncExitStack() as channels:
        user_channel = await channels.enter_async_context(
            grpc.aio.insecure_channel(endpoints.user_addr)
        )
        patients = None
        if patient_up and endpoints.patient_addr is not None:
            patient_channel = await channels.enter_async_context(
                grpc.aio.insecure_channel(endpoints.patient_addr)
            )
            patients = patient_grpc.PatientRecordServiceStub(patient_channel)
        session = ApiSession(user_channel, BENCH_CREDENTIALS)
        await session.sign_in()
        targets = GrpcTargets(user_grpc.UserServiceStub(user_channel), patients)
        report = BenchReport(command, datetime.now(UTC), plan, [], scenarios)
        runnable = _runnable(scenarios, patient_up, report)
        needs_patients = any(scenario.service == PATIENT_SERVICE for scenario in runnable)
        data = await ensure_bench_data(
            session, targets.patients if needs_patients else None, plan.patients
        )
        report.patients = len(data.patient_ids)
        wrk = wrk_binary()
        report.facts = await asyncio.to_thread(
            machine_facts, endpoints.postgres_admin_url, endpoints.redis_url, wrk
        )
        vias = _available_vias(plan.vias, wrk, report)
        measurer = _Measurer(endpoints, plan, session, targets, data, wrk, workdir, log)
        for scenario in runnable:
            report.results += await measurer.scenario(scenario, vias)
    return report


async def _patient_service_up(endpoints: Endpoints) -> bool:
    if endpoints.patient_addr is None:
        return False
    proto_service = service_by_key(PATIENT_SERVICE).proto_service
    if endpoints.patient_required:
        await require_service(PATIENT_SERVICE, endpoints.patient_addr, proto_service)
        return True
    return await service_status(endpoints.patient_addr, proto_service) == "SERVING"


def _runnable(scenarios: list[Scenario], patient_up: bool, report: BenchReport) -> list[Scenario]:
    runnable = [s for s in scenarios if patient_up or s.service != PATIENT_SERVICE]
    report.skipped += [
        f"{s.title}: the patient-record service is not part of this stack"
        for s in scenarios
        if s not in runnable
    ]
    return runnable


def _available_vias(wanted: Sequence[str], wrk: str | None, report: BenchReport) -> list[str]:
    if VIA_GATEWAY in wanted and wrk is None:
        report.skipped.append("every gateway run: wrk is not installed (`make bench-deps`)")
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
        log: Log,
    ) -> None:
        self._endpoints = endpoints
        self._plan = plan
        self._session = session
        self._targets = targets
        self._data = data
        self._wrk = wrk
        self._workdir = workdir
        self._log = log

    async def scenario(self, scenario: Scenario, vias: Sequence[str]) -> list[RunResult]:
        meter = cpu.CpuMeter(self._readers(scenario))
        # One cursor through the cycle for the whole scenario: a cache-miss run never
        # starts over at patients that the previous run has just put into the cache.
        cursor = 0
        results = []
        for via in vias:
            for level in self._plan.concurrency:
                if self._plan.warmup > 0:
                    warmup = await self._load(scenario, via, level, self._plan.warmup, cursor)
                    cursor += warmup.requests
                result = await self._measured(scenario, via, level, meter, cursor)
                cursor += result.stats.requests
                self._log(_line(result))
                results.append(result)
        return results

    async def _measured(
        self, scenario: Scenario, via: str, level: int, meter: cpu.CpuMeter, cursor: int
    ) -> RunResult:
        admin = self._endpoints.envoy_admin_url
        metrics = self._endpoints.patient_metrics_url
        if scenario.cold_cache:
            await patient_cache.evict(self._endpoints.redis_url, self._data.patient_ids)
        limited_before = await rate_limited_count(admin)
        reads_before = await patient_cache.cache_reads(metrics)
        before = meter.snapshot()
        stats = await self._load(scenario, via, level, self._plan.duration, cursor)
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
        self, scenario: Scenario, via: str, level: int, duration: float, start: int
    ) -> LoadStats:
        if via == VIA_GATEWAY and self._wrk is not None:
            return await run_wrk(
                self._wrk,
                self._endpoints.gateway_url,
                scenario.http_cycle(self._data),
                await self._session.access_token(),
                concurrency=level,
                duration=duration,
                start=start,
                workdir=self._workdir,
            )
        call = scenario.grpc_call(
            self._targets, self._data, await self._session.metadata(), CALL_TIMEOUT_SECONDS
        )
        return await run_grpc_load(
            call,
            concurrency=level,
            duration=duration,
            call_timeout=CALL_TIMEOUT_SECONDS,
            start=start,
        )

    def _readers(self, scenario: Scenario) -> dict[str, cpu.CpuReader]:
        service_addr = (
            self._endpoints.patient_addr
            if scenario.service == PATIENT_SERVICE
            else self._endpoints.user_addr
        )
        ports = {
            "gateway": _port_of(self._endpoints.gateway_url),
            "service": _port_of(f"//{service_addr}"),
            "redis": _port_of(self._endpoints.redis_url, default=_REDIS_PORT),
        }
        readers: dict[str, cpu.CpuReader] = {}
        for group, port in ports.items():
            # Not on this machine (a remote Redis, say): the column stays empty.
            if pids := cpu.listening_pids(port):
                readers[group] = cpu.pids_seconds(pids)
        readers["postgres"] = cpu.named_tree_seconds("postgres")
        readers["load generator"] = cpu.own_process_seconds
        return readers


def _port_of(url: str, default: int | None = None) -> int:
    port = urlsplit(url).port or default
    if port is None:
        raise ValueError(f"{url!r} names no port")
    return port


def _line(result: RunResult) -> str:
    stats = result.stats
    p50 = f"{stats.p50_seconds * 1e3:.2f}" if stats.p50_seconds is not None else "-"
    p99 = f"{stats.p99_seconds * 1e3:.2f}" if stats.p99_seconds is not None else "-"
    return (
        f"{result.scenario.title:<24} {result.via:<8} c={result.concurrency:<3} "
        f"{stats.ok_per_second:9.1f} req/s  p50 {p50} ms  p99 {p99} ms  "
        f"errors {stats.errors}"
    )
