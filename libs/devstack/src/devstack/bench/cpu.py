"""CPU time per process, from /proc: who spent how much on a benchmark's requests.

Processes are found by the TCP port they listen on (the socket inode in /proc/net/tcp*,
then the process holding it in /proc/*/fd), so the gateway and services started by
`make run` or by a test are found the same way. PostgreSQL is summed over all its
processes, plus the time of backends that exited meanwhile, which the kernel adds to
their parent postmaster's cutime/cstime. Resolution is one clock tick (usually 10 ms).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
_LISTEN_STATE = "0A"
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")

# Reads the CPU seconds one group of processes has used so far.
CpuReader = Callable[[], float]


@dataclass(frozen=True)
class ProcessTimes:
    pid: int
    parent: int
    name: str
    own_seconds: float  # utime + stime
    children_seconds: float  # cutime + cstime: children it has waited for


def process_times(pid: int, proc: Path = _PROC) -> ProcessTimes | None:
    """The pid's CPU times, or None if it is gone (or was never there)."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The name is in parentheses and may itself contain spaces or ')': split at the last.
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    # Fields from #3 (state) on: ppid is #4, utime..cstime are #14..#17.
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return ProcessTimes(
        pid=pid,
        parent=int(fields[1]),
        name=name,
        own_seconds=(utime + stime) / _TICKS_PER_SECOND,
        children_seconds=(cutime + cstime) / _TICKS_PER_SECOND,
    )


def listening_pids(port: int, proc: Path = _PROC) -> list[int]:
    """Pids of the processes holding a TCP socket that listens on `port` (any address)."""
    inodes = _listening_inodes(port, proc)
    if not inodes:
        return []
    targets = {f"socket:[{inode}]" for inode in inodes}
    return sorted(pid for pid in _pids(proc) if targets & _socket_links(pid, proc))


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            columns = line.split()
            local, state, inode = columns[1], columns[3], columns[9]
            if state == _LISTEN_STATE and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def _pids(proc: Path) -> Iterable[int]:
    return (int(entry.name) for entry in proc.iterdir() if entry.name.isdigit())


def _socket_links(pid: int, proc: Path) -> set[str]:
    links: set[str] = set()
    try:
        for fd in (proc / str(pid) / "fd").iterdir():
            try:
                links.add(os.readlink(fd))
            except OSError:  # closed between listing and reading
                continue
    except OSError:  # gone, or not ours to read
        return set()
    return links


def pids_seconds(pids: Iterable[int], proc: Path = _PROC) -> CpuReader:
    """A reader of the CPU seconds these processes have used (vanished ones count 0)."""
    fixed = tuple(pids)

    def read() -> float:
        times = (process_times(pid, proc) for pid in fixed)
        return sum(t.own_seconds for t in times if t is not None)

    return read


def named_tree_seconds(name: str, proc: Path = _PROC) -> CpuReader:
    """A reader for every process called `name` (PostgreSQL: "postgres"), exited ones too.

    Processes are looked up at each read, as backends come and go during a run; a
    backend that exited is in its postmaster's children time, which is counted for the
    roots of the tree (those whose parent is not `name`).
    """

    def read() -> float:
        times = [t for pid in _pids(proc) if (t := process_times(pid, proc)) and t.name == name]
        members = {t.pid for t in times}
        return sum(t.own_seconds for t in times) + sum(
            t.children_seconds for t in times if t.parent not in members
        )

    return read


def own_process_seconds() -> float:
    """This process and the children it has waited for (wrk): the load generator's share."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class CpuMeter:
    """Snapshots of several readers; the difference of two is what each group spent."""

    def __init__(self, readers: dict[str, CpuReader]) -> None:
        self._readers = readers

    def snapshot(self) -> dict[str, float]:
        return {group: read() for group, read in self._readers.items()}

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {group: max(0.0, after[group] - before[group]) for group in before}
