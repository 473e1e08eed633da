"""Resident memory of the stack's processes, from /proc/<pid>/status (VmRSS).

Read before the bench puts any load on the stack (idle: the issue's target is at most
120 MB per service process), after the run, and during a soak (bench.soak). Processes
are found by the port they listen on, like the CPU columns (bench.cpu): each service and
the summary worker by its gRPC port, Envoy by the gateway's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack.bench import cpu

_PROC = Path("/proc")
_VM_RSS = re.compile(r"^VmRSS:\s+(\d+)\s+kB$", re.MULTILINE)
MIB = 1024 * 1024
# The ceiling for a service process at rest.
IDLE_TARGET_BYTES = 120 * MIB
GATEWAY_PROCESS = "gateway (Envoy)"


@dataclass(frozen=True)
class Watched:
    """A process of the stack under test; `service` says the RSS target applies to it."""

    name: str
    pid: int
    service: bool


def parse_vm_rss(status: str) -> int | None:
    """VmRSS of a /proc/<pid>/status text, in bytes (None: no such line, a kernel thread)."""
    found = _VM_RSS.search(status)
    return int(found.group(1)) * 1024 if found else None


def rss_bytes(pid: int, proc: Path = _PROC) -> int | None:
    """The process's resident set now; None once it is gone or not ours to read."""
    try:
        return parse_vm_rss((proc / str(pid) / "status").read_text())
    except OSError:
        return None


def watched_processes(
    services: Mapping[str, str], gateway_port: int | None, proc: Path = _PROC
) -> list[Watched]:
    """Every local process listening on a service's address ("host:port"), then Envoy's."""
    found = [
        Watched(name, pid, service=True)
        for name, address in services.items()
        for pid in cpu.listening_pids(_port(address), proc)
    ]
    if gateway_port is not None:
        found += [
            Watched(GATEWAY_PROCESS, pid, service=False)
            for pid in cpu.listening_pids(gateway_port, proc)
        ]
    return found


def snapshot(processes: Sequence[Watched], proc: Path = _PROC) -> dict[int, int | None]:
    """RSS of each watched process, by pid."""
    return {process.pid: rss_bytes(process.pid, proc) for process in processes}


@dataclass
class MemoryReport:
    """RSS before the bench loaded the stack, and after the run."""

    processes: list[Watched]
    idle: dict[int, int | None]
    after: dict[int, int | None]

    def growth(self, pid: int) -> int | None:
        before, after = self.idle.get(pid), self.after.get(pid)
        return None if before is None or after is None else after - before

    def idle_over_target(self) -> list[Watched]:
        return [
            p
            for p in self.processes
            if p.service and (self.idle.get(p.pid) or 0) > IDLE_TARGET_BYTES
        ]


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:,.1f}"


def _port(address: str) -> int:
    return int(address.rpartition(":")[2])
