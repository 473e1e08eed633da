"""Keep a set of child processes running: logs, readiness, restarts with backoff, clean stop.

Each child's output goes to `<log_dir>/<name>.log` and, prefixed with its name, to the
console. A child that exits is restarted after a delay that doubles up to a limit, and
resets once a run has lasted long enough to count as stable. `stop()` sends SIGTERM to
every child's process group, waits a grace period, then SIGKILLs what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

# Given a function that says why to give up (the child exited), wait until ready or raise.
ReadyCheck = Callable[[Callable[[], str | None]], Awaitable[None]]

_LINE_LIMIT = 16 * 1024 * 1024
# What one read of a child's output takes at most: many lines, under load.
_CHUNK_BYTES = 256 * 1024
_TAIL_LINES = 40


@dataclass(frozen=True)
class ProcessSpec:
    """What to run, with which environment, and how to tell it is ready."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path | None = None
    ready: ReadyCheck | None = None


@dataclass(frozen=True)
class RestartPolicy:
    initial_delay: float = 0.5
    max_delay: float = 30.0
    stable_after: float = 30.0  # a run at least this long resets the delay


class StartupError(RuntimeError):
    """A child exited or never became ready while starting; carries its log tail."""

    def __init__(self, name: str, reason: str, tail: str) -> None:
        message = f"{name} failed to start: {reason}"
        if tail:
            message += f"\n--- last lines of {name} ---\n{tail}"
        super().__init__(message)
        self.name = name


@dataclass
class _Child:
    spec: ProcessSpec
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    started_at: float = 0.0
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=_TAIL_LINES))
    pump: asyncio.Task[None] | None = None

    def exit_reason(self) -> str | None:
        if self.process is None or self.process.returncode is None:
            return None
        return f"exited with {describe_exit(self.process.returncode)}"


class Supervisor:
    """Starts children in order, keeps them alive, stops them all on request."""

    def __init__(
        self,
        log_dir: Path,
        console: TextIO | None = None,
        policy: RestartPolicy | None = None,
        grace_seconds: float = 10.0,
    ) -> None:
        self._log_dir = log_dir
        self._console = console or sys.stdout
        self._policy = policy or RestartPolicy()
        self._grace = grace_seconds
        self._children: list[_Child] = []
        self._keepers: list[asyncio.Task[None]] = []
        self._stop_requested = asyncio.Event()
        self._label_width = 10

    def say(self, message: str) -> None:
        self._emit("devstack", message)

    def request_stop(self) -> None:
        self._stop_requested.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.request_stop)

    async def wait_for_stop_request(self) -> None:
        await self._stop_requested.wait()

    def starts(self, name: str) -> int:
        """How many times the child `name` has been started (restarts included)."""
        return sum(child.starts for child in self._children if child.spec.name == name)

    async def run_to_completion(self, spec: ProcessSpec) -> None:
        """Run a one-shot command (a migration); StartupError unless it exits 0."""
        child = self._child(spec)
        await self._spawn(child)
        if (code := await self._reap(child)) != 0:
            raise StartupError(
                spec.name, f"exited with {describe_exit(code)}", "\n".join(child.tail)
            )

    async def start(self, spec: ProcessSpec) -> None:
        """Start `spec`, wait until it is ready, then keep it running.

        The readiness check owns its deadline: it raises when it gives up.
        """
        child = self._child(spec)
        await self._spawn(child)
        if spec.ready is not None:
            try:
                await spec.ready(child.exit_reason)
            except (TimeoutError, OSError, RuntimeError) as error:
                await self._terminate(child)
                reason = child.exit_reason() or str(error) or "not ready in time"
                raise StartupError(spec.name, reason, "\n".join(child.tail)) from error
        self._keepers.append(asyncio.create_task(self._keep(child), name=f"keep-{spec.name}"))

    async def stop(self) -> None:
        """Stop children newest first, one at a time: SIGTERM, then SIGKILL after the grace.

        One at a time, so what started first (the trace sink) still receives what the
        others flush while they stop.
        """
        self._stop_requested.set()
        for child in reversed(self._children):
            await self._terminate(child)
        for keeper in self._keepers:
            keeper.cancel()
        await asyncio.gather(*self._keepers, return_exceptions=True)

    def _child(self, spec: ProcessSpec) -> _Child:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        self._label_width = max(self._label_width, len(spec.name))
        child = _Child(spec, self._log_dir / f"{spec.name}.log")
        child.log_path.write_text("", encoding="utf-8")  # one run per file; restarts append
        self._children.append(child)
        return child

    async def _spawn(self, child: _Child) -> None:
        spec = child.spec
        child.process = await asyncio.create_subprocess_exec(
            *spec.argv,
            env=dict(spec.env),
            cwd=spec.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Its own process group: Ctrl-C reaches only us, and we stop children in order.
            start_new_session=True,
            limit=_LINE_LIMIT,
        )
        child.starts += 1
        child.started_at = time.monotonic()
        with child.log_path.open("a", encoding="utf-8") as log:
            log.write(f"---- {time.strftime('%Y-%m-%d %H:%M:%S')} started pid {child.process.pid}:")
            log.write(f" {' '.join(spec.argv)}\n")
        child.pump = asyncio.create_task(self._pump(child, child.process))

    async def _pump(self, child: _Child, process: asyncio.subprocess.Process) -> None:
        """Relays the child's output as it comes, whole lines only, as many at a time as
        arrived together: under load Envoy's access log is thousands of lines a second,
        and a write and a flush per line took a fifth of a core at ~15 000."""
        assert process.stdout is not None  # noqa: S101  # created with stdout=PIPE
        partial = b""
        with child.log_path.open("a", encoding="utf-8") as log:
            while chunk := await process.stdout.read(_CHUNK_BYTES):
                *complete, partial = (partial + chunk).split(b"\n")
                if len(partial) >= _LINE_LIMIT:  # no newline in sight: relay what came
                    complete.append(partial)
                    partial = b""
                if complete:
                    self._relay(child, log, complete)
            if partial:  # its last line, without a newline
                self._relay(child, log, [partial])

    def _relay(self, child: _Child, log: TextIO, raw_lines: list[bytes]) -> None:
        lines = [raw.decode("utf-8", errors="replace") for raw in raw_lines]
        log.write("".join(f"{line}\n" for line in lines))
        log.flush()
        child.tail.extend(lines)
        self._emit_lines(child.spec.name, lines)

    async def _reap(self, child: _Child) -> int:
        assert child.process is not None  # noqa: S101  # only called after _spawn
        code = await child.process.wait()
        if child.pump is not None:
            await child.pump
        return code

    async def _keep(self, child: _Child) -> None:
        delay = self._policy.initial_delay
        while True:
            code = await self._reap(child)
            if self._stop_requested.is_set():
                return
            ran = time.monotonic() - child.started_at
            if ran >= self._policy.stable_after:
                delay = self._policy.initial_delay
            self._emit(
                child.spec.name,
                f"exited with {describe_exit(code)} after {ran:.1f} s; restarting in {delay:g} s",
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), delay)
            if self._stop_requested.is_set():
                return
            delay = min(delay * 2, self._policy.max_delay)
            try:
                await self._spawn(child)
            except OSError as error:
                self._emit(child.spec.name, f"cannot restart, giving up on it: {error}")
                return

    async def _terminate(self, child: _Child) -> None:
        process = child.process
        if process is None or process.returncode is not None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), self._grace)
        except TimeoutError:
            self._emit(child.spec.name, f"still running after {self._grace:g} s; killing")
            _signal_group(process.pid, signal.SIGKILL)
            await process.wait()
        if child.pump is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await child.pump

    def _emit(self, name: str, line: str) -> None:
        self._emit_lines(name, [line])

    def _emit_lines(self, name: str, lines: list[str]) -> None:
        label = f"{name:<{self._label_width}} | "
        self._console.write("".join(f"{label}{line}\n" for line in lines))
        self._console.flush()


def describe_exit(code: int) -> str:
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"code {code}"


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
