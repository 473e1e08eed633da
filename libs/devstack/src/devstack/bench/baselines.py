"""What MedStation's numbers are read against, measured in the same run on the same cores:
the echo ceilings (bench.ceilings) and the FastAPI reference (bench.reference).

Each baseline is measured like a scenario (a warm-up at each level, then the measured
window bracketed by CPU snapshots), and every scenario row is shown as a ratio to the
ceiling of its path at the same concurrency: gateway rows to the echo through the same
gateway config, direct rows to the echo called directly with h2load.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from devstack.bench import cpu
from devstack.bench.load_stats import LoadStats
from devstack.bench.vias import VIA_DIRECT, VIA_GATEWAY

ECHO_DIRECT = "echo_direct"
ECHO_DIRECT_GRPC_AIO = "echo_direct_grpc_aio"
ECHO_GATEWAY = "echo_gateway"
# The echo through the gateway again, right before and right after a row a target reads
# against it (bench.runner): the same minute's ceiling.
ECHO_GATEWAY_BESIDE = "echo_gateway_beside"
FASTAPI = "fastapi"
# Measurement keys for --scenarios.
CEILINGS = "ceilings"
REFERENCE = "fastapi_reference"


@dataclass(frozen=True)
class Baseline:
    key: str
    path: str  # the table's path column: what was called, how, by which load generator
    summary: str


BASELINES: dict[str, Baseline] = {
    ECHO_DIRECT: Baseline(
        ECHO_DIRECT,
        "echo · direct · gRPC · h2load",
        "the bare `grpc.aio` echo service called directly (h2load, one call in flight per "
        "connection): the most a Python gRPC process serves on this machine — the "
        "ceiling of the direct rows",
    ),
    ECHO_DIRECT_GRPC_AIO: Baseline(
        ECHO_DIRECT_GRPC_AIO,
        "echo · direct · gRPC · grpc.aio",
        "the same echo called by the bench's own `grpc.aio` load generator, which the "
        "direct scenario rows use: the most that generator drives here (it shares the "
        "two cores with the service it measures)",
    ),
    ECHO_GATEWAY: Baseline(
        ECHO_GATEWAY,
        "echo · gateway · REST · wrk",
        "the same echo as REST through an Envoy rendered from the gateway's own template "
        "(`gateway/envoy.yaml.j2`, every filter on: rate limit, JWT verified against the "
        "stack's JWKS with the bench's real token, transcoder, tracing, access log) — the "
        "ceiling of the gateway rows",
    ),
    ECHO_GATEWAY_BESIDE: Baseline(
        ECHO_GATEWAY_BESIDE,
        "echo · gateway · REST · wrk, beside",
        "the same echo through the same gateway, measured again right before and right "
        "after the row a target divides by it (GetPatient from cache, at the target's "
        "level), with the same warm-up and duration: this machine's speed drifts by "
        "15-35 % within minutes, so the target reads that row against the echo of the "
        "same minute, not of the baselines phase",
    ),
    FASTAPI: Baseline(
        FASTAPI,
        "FastAPI · REST · wrk",
        "the monolith MedStation replaces, as issue 9 measured it: FastAPI + SQLAlchemy "
        "async ORM + psycopg under uvicorn (one worker, uvloop, httptools, no access log), "
        "GET one row by primary key from a table of its own database, a different row "
        "each request — what the GetPatient and CreateNote targets are ratios of",
    ),
}
# The ceiling each path's scenario rows are divided by.
CEILING_OF_VIA = {VIA_GATEWAY: ECHO_GATEWAY, VIA_DIRECT: ECHO_DIRECT}


@dataclass(frozen=True)
class BaselineResult:
    key: str
    concurrency: int
    stats: LoadStats
    cpu_seconds: dict[str, float]

    @property
    def baseline(self) -> Baseline:
        return BASELINES[self.key]

    def cpu_us_per_request(self, group: str) -> float | None:
        if not self.stats.ok or group not in self.cpu_seconds:
            return None
        return self.cpu_seconds[group] * 1e6 / self.stats.ok


def find(results: Sequence[BaselineResult], key: str, concurrency: int) -> BaselineResult | None:
    return next((r for r in results if r.key == key and r.concurrency == concurrency), None)


def ratio_to_ceiling(
    via: str, concurrency: int, ok_per_second: float, results: Sequence[BaselineResult]
) -> float | None:
    """A scenario row's req/s over its path's ceiling at the same concurrency (None: none)."""
    key = CEILING_OF_VIA.get(via)
    ceiling = find(results, key, concurrency) if key else None
    if ceiling is None or ceiling.stats.ok_per_second <= 0:
        return None
    return ok_per_second / ceiling.stats.ok_per_second


# Runs `seconds` of load at a concurrency level.
LoadRun = Callable[[int, float], Awaitable[LoadStats]]


async def measure_levels(
    key: str,
    levels: Sequence[int],
    *,
    warmup: float,
    duration: float,
    load: LoadRun,
    readers: dict[str, cpu.CpuReader],
    log: Callable[[str], None],
) -> list[BaselineResult]:
    """Each level: warm-up (discarded), then the measured run between CPU snapshots."""
    meter = cpu.CpuMeter(readers)
    results = []
    for level in levels:
        if warmup > 0:
            await load(level, warmup)
        before = meter.snapshot()
        stats = await load(level, duration)
        after = meter.snapshot()
        result = BaselineResult(key, level, stats, cpu.CpuMeter.spent(before, after))
        log(line(result))
        results.append(result)
    return results


def line(result: BaselineResult) -> str:
    stats = result.stats
    p99 = "-" if stats.p99_seconds is None else f"{stats.p99_seconds * 1e3:.2f}"
    return (
        f"{result.baseline.path:<32} c={result.concurrency:<3} "
        f"{stats.ok_per_second:9.1f} req/s  p99 {p99} ms  errors {stats.errors}"
    )
