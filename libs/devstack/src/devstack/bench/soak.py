"""`--soak SECONDS`: GetPatient through the gateway at about half the measured capacity
for that long, the RSS of every stack process sampled as it goes (issue 9: no growth
across 10 minutes at half capacity). Not part of the default run.

wrk is paced with its delay() hook (bench.wrk) and run in chunks: after each chunk the
bench reads the rate it achieved, sets the next chunk's delay to come closer to the
target, and samples RSS. Growth is counted from the end of the first chunk (pools
filled, caches warm) to the end of the last, so memory a process takes once while it
warms up does not count; a few MB either way is the allocator, not a leak.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devstack.bench.load_stats import LoadStats
from devstack.bench.memory import MIB, Watched, snapshot
from devstack.bench.wrk import HttpRequest, run_wrk

CHUNK_SECONDS = 30
CONNECTIONS = 16
GROWTH_TOLERANCE_BYTES = 5 * MIB
# What the issue asks a soak to last.
TARGET_SECONDS = 600


@dataclass(frozen=True)
class SoakChunk:
    delay_ms: int
    stats: LoadStats
    rss: dict[int, int | None]  # after the chunk, by pid


@dataclass
class SoakResult:
    seconds: float  # asked for
    capacity: float  # req/s: the target is half of it
    capacity_source: str
    processes: list[Watched]
    before: dict[int, int | None]  # RSS as the soak began, by pid
    chunks: list[SoakChunk] = field(default_factory=list)

    @property
    def target_rate(self) -> float:
        return self.capacity / 2

    @property
    def achieved_rate(self) -> float:
        seconds = sum(chunk.stats.seconds for chunk in self.chunks)
        return sum(chunk.stats.ok for chunk in self.chunks) / seconds if seconds else 0.0

    @property
    def errors(self) -> int:
        return sum(chunk.stats.errors for chunk in self.chunks)

    def growth(self, pid: int) -> int | None:
        """RSS at the end minus RSS after the first chunk."""
        if len(self.chunks) < 2:
            return None
        first, last = self.chunks[0].rss.get(pid), self.chunks[-1].rss.get(pid)
        return None if first is None or last is None else last - first

    def peak(self, pid: int) -> int | None:
        values = [v for chunk in self.chunks if (v := chunk.rss.get(pid)) is not None]
        return max(values) if values else None

    def grown(self) -> list[Watched]:
        """Service processes whose RSS grew by more than the tolerance."""
        return [
            p
            for p in self.processes
            if p.service and (self.growth(p.pid) or 0) > GROWTH_TOLERANCE_BYTES
        ]


def first_delay_ms(target_rate: float, connections: int) -> int:
    """Each connection's pause before a request, ignoring its latency (a first guess)."""
    return max(0, round(connections * 1000 / target_rate))


def next_delay_ms(delay_ms: int, achieved: float, target: float, connections: int) -> int:
    """The pause that moves `connections` paced connections from `achieved` to `target`.

    Each connection sends one request per (pause + latency): the achieved rate gives the
    latency, and the target the cycle it should take.
    """
    if achieved <= 0 or target <= 0:
        return delay_ms
    latency_ms = max(0.0, connections * 1000 / achieved - delay_ms)
    return max(0, round(connections * 1000 / target - latency_ms))


async def run_soak(
    result: SoakResult,
    wrk: str,
    gateway_url: str,
    cycle: Sequence[HttpRequest],
    token: Callable[[], Awaitable[str]],
    *,
    workdir: Path,
    log: Callable[[str], None],
) -> SoakResult:
    """Fill `result.chunks`, chunk by chunk, until the soak's time is used up."""
    chunks = max(1, math.ceil(result.seconds / CHUNK_SECONDS))
    delay = first_delay_ms(result.target_rate, CONNECTIONS)
    cursor = 0
    for index in range(chunks):
        seconds = min(CHUNK_SECONDS, result.seconds - index * CHUNK_SECONDS)
        stats = await run_wrk(
            wrk,
            gateway_url,
            cycle,
            await token(),  # a fresh one per chunk: a soak outlives an access token
            concurrency=CONNECTIONS,
            duration=max(1.0, seconds),
            start=cursor,
            workdir=workdir,
            delay_ms=delay,
        )
        cursor += stats.requests
        result.chunks.append(SoakChunk(delay, stats, snapshot(result.processes)))
        log(
            f"soak {index + 1}/{chunks}: {stats.ok_per_second:,.0f} req/s "
            f"(target {result.target_rate:,.0f}), errors {stats.errors}"
        )
        delay = next_delay_ms(delay, stats.ok_per_second, result.target_rate, CONNECTIONS)
    return result
