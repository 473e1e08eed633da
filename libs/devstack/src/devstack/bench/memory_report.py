"""The report's memory sections: RSS of each stack process before and after the run, and
the soak's samples when one ran."""

from __future__ import annotations

from typing import Any

from devstack.bench.memory import IDLE_TARGET_BYTES, MIB, MemoryReport, mib
from devstack.bench.soak import CHUNK_SECONDS, CONNECTIONS, GROWTH_TOLERANCE_BYTES, SoakResult
from devstack.bench.table import aligned, markdown, ms, number

MEMORY_HEADING = "Memory"
SOAK_HEADING = "Soak"
_MEMORY_HEADERS = ("process", "pid", "idle RSS MB", "after the run MB", "growth MB")
_SOAK_HEADERS = (
    "process", "pid", "at start MB", "after the first chunk MB", "at the end MB",
    "peak MB", "growth since the first chunk MB",
)  # fmt: skip


def memory_rows(report: MemoryReport) -> list[list[str]]:
    return [
        [
            process.name,
            str(process.pid),
            mib(report.idle.get(process.pid)),
            mib(report.after.get(process.pid)),
            _signed(report.growth(process.pid)),
        ]
        for process in report.processes
    ]


def memory_section(report: MemoryReport, measured: str) -> str:
    over = report.idle_over_target()
    verdict = (
        f"over {IDLE_TARGET_BYTES // MIB} MB at rest: {', '.join(p.name for p in over)}"
        if over
        else f"every service process at or under {IDLE_TARGET_BYTES // MIB} MB at rest"
    )
    return "\n\n".join(
        (
            "Resident memory (VmRSS from `/proc/<pid>/status`; MB of 2^20 bytes) of each "
            "process of the stack, found by the port it listens on: **idle** before the "
            "bench sent its first request (a shared `make run` may have served others "
            "before), **after "
            "the run** once every measurement ended. Growth over a run is mostly pools, "
            "caches and allocator arenas filling; whether memory keeps growing is what a "
            f"soak shows (`--soak 600`). Measured {measured}.",
            markdown(_MEMORY_HEADERS, memory_rows(report)),
            f"Reading: {verdict}.",
        )
    )


def soak_rows(soak: SoakResult) -> list[list[str]]:
    first = soak.chunks[0].rss if soak.chunks else {}
    last = soak.chunks[-1].rss if soak.chunks else {}
    return [
        [
            process.name,
            str(process.pid),
            mib(soak.before.get(process.pid)),
            mib(first.get(process.pid)),
            mib(last.get(process.pid)),
            mib(soak.peak(process.pid)),
            _signed(soak.growth(process.pid)),
        ]
        for process in soak.processes
    ]


def soak_section(soak: SoakResult, measured: str) -> str:
    p99s = [c.stats.p99_seconds for c in soak.chunks if c.stats.p99_seconds is not None]
    low, high = (number(ms(min(p99s)), 1), number(ms(max(p99s)), 1)) if p99s else ("-", "-")
    grown = soak.grown()
    verdict = (
        f"grew by more than {GROWTH_TOLERANCE_BYTES // MIB} MB: {', '.join(p.name for p in grown)}"
        if grown
        else f"no service process grew by more than {GROWTH_TOLERANCE_BYTES // MIB} MB"
    )
    return "\n\n".join(
        (
            f"GetPatient through the gateway (a different bench patient each request) at "
            f"about half capacity: target {soak.target_rate:,.0f} req/s, half of "
            f"{soak.capacity:,.0f} ({soak.capacity_source}); {soak.seconds:g} s in "
            f"{len(soak.chunks)} chunks of up to {CHUNK_SECONDS} s (wrk, {CONNECTIONS} "
            "connections paced by its delay() hook, the pause re-aimed after each chunk); "
            f"RSS read after each chunk. Measured {measured}.",
            markdown(_SOAK_HEADERS, soak_rows(soak)),
            f"Reading: {soak.achieved_rate:,.0f} req/s achieved, p99 per chunk {low} to {high} ms, "
            f"{soak.errors} errors; {verdict} from the end of the first chunk to the end.",
        )
    )


def terminal_table(report: MemoryReport | None) -> str:
    return aligned(_MEMORY_HEADERS, memory_rows(report)) if report and report.processes else ""


def memory_json(report: MemoryReport | None) -> list[dict[str, Any]]:
    if report is None:
        return []
    return [
        {
            "process": p.name,
            "pid": p.pid,
            "service": p.service,
            "idle_rss_bytes": report.idle.get(p.pid),
            "after_rss_bytes": report.after.get(p.pid),
        }
        for p in report.processes
    ]


def soak_json(soak: SoakResult | None) -> dict[str, Any] | None:
    if soak is None:
        return None
    return {
        "seconds": soak.seconds,
        "capacity": soak.capacity,
        "target_rate": soak.target_rate,
        "achieved_rate": soak.achieved_rate,
        "errors": soak.errors,
        "growth_bytes": {p.name: soak.growth(p.pid) for p in soak.processes},
    }


def _signed(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:+,.1f}"
