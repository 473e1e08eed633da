"""Subprocesses for tests: started with an environment, logged to a file, always stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class RunningProcess:
    """A started child; everything it prints is in `log_path`."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_seconds: float = 10.0) -> int:
        """SIGTERM its process group, SIGKILL after the grace period; the exit code."""
        if self.alive():
            _signal_group(self.pid, signal.SIGTERM)
            try:
                return self.popen.wait(grace_seconds)
            except subprocess.TimeoutExpired:
                _signal_group(self.pid, signal.SIGKILL)
        return self.popen.wait()


class ProcessRunner:
    """Starts processes into `log_dir` and stops every one of them in `stop_all`."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self.processes: list[RunningProcess] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        *,
        inherit_env: bool = True,
    ) -> RunningProcess:
        """Start `argv`; `env` is laid over this process's environment unless told not to."""
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self._log_dir / f"{name}.log"
        full_env = {**(os.environ if inherit_env else {}), "PYTHONUNBUFFERED": "1", **(env or {})}
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                list(argv),
                env=full_env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stop() reaches its children too
            )
        process = RunningProcess(name, popen, log_path)
        self.processes.append(process)
        return process

    def stop_all(self, grace_seconds: float = 10.0) -> None:
        for process in reversed(self.processes):
            process.stop(grace_seconds)

    def report(self, lines: int = 40) -> str:
        """Each process's state and log tail, for a failing test's output."""
        sections = []
        for process in self.processes:
            state = "running" if process.alive() else f"exited {process.popen.returncode}"
            sections.append(
                f"--- {process.name} (pid {process.pid}, {state}): {process.log_path} ---\n"
                + process.log_tail(lines)
            )
        return "\n".join(sections)


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
