"""Local processes of the stack under test, found by the port they listen on.

The bench reads what a running service was started with (its command line, environment
and working directory, from /proc) to learn a setting it cannot ask for over the API (the
chat service's send limit), and to start a second summary worker exactly like the first.
Everything returns None when the process is not on this machine or not ours to read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from devstack.bench.cpu import listening_pids

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessImage:
    """How a process was started: enough to start another one like it."""

    pid: int
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str | None


def port_of_address(address: str) -> int | None:
    """The port of "host:port" (None without one)."""
    _, _, port = address.rpartition(":")
    return int(port) if port.isdigit() else None


def process_listening_on(address: str, proc: Path = _PROC) -> ProcessImage | None:
    """The (first) process listening on the address's port, if this machine has one."""
    port = port_of_address(address)
    if port is None:
        return None
    for pid in listening_pids(port, proc):
        if (image := process_image(pid, proc)) is not None:
            return image
    return None


def process_image(pid: int, proc: Path = _PROC) -> ProcessImage | None:
    base = proc / str(pid)
    try:
        argv = _nul_separated((base / "cmdline").read_bytes())
        pairs = _nul_separated((base / "environ").read_bytes())
    except OSError:  # gone, or another user's
        return None
    env = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
    try:
        cwd: str | None = os.readlink(base / "cwd")
    except OSError:
        cwd = None
    return ProcessImage(pid, tuple(argv), env, cwd) if argv else None


def _nul_separated(raw: bytes) -> list[str]:
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
