"""More summary workers for the duration of one measurement, started like the stack's own.

The stack under test (`make run`, a test's harness) runs one worker. For the 2-worker row
the bench starts another: the same command line, environment and working directory as
the running worker (read from /proc), with a gRPC and metrics port of its own. It joins
the same job stream's consumer group, so the two share the jobs. The bench stops it (by
its own pid) when the measurement ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

from devstack.bench.processes import process_listening_on
from devstack.health import NotReadyError, wait_for_grpc_health_async
from devstack.ports import free_port

WORKER_SERVICE_NAME = "summary-worker"
_READY_TIMEOUT_SECONDS = 30.0
_STOP_TIMEOUT_SECONDS = 15.0
_TAIL_CHARS = 2000


class WorkerUnavailable(RuntimeError):
    """No further worker could be started; the message says why (for a `skipped:` line)."""


class ExtraWorker:
    def __init__(self, process: asyncio.subprocess.Process, address: str) -> None:
        self._process = process
        self.address = address

    @classmethod
    async def start(cls, running_worker_addr: str, log_path: Path) -> ExtraWorker:
        image = process_listening_on(running_worker_addr)
        if image is None:
            raise WorkerUnavailable(
                f"no summary worker process of ours listens on {running_worker_addr} "
                "(its command line and environment are what a second worker starts with)"
            )
        host = image.env.get("MEDSTATION_GRPC_HOST") or "127.0.0.1"
        port = free_port(host)
        env = {
            **image.env,
            "MEDSTATION_GRPC_PORT": str(port),
            "MEDSTATION_METRICS_PORT": str(free_port(host)),
            "OTEL_SERVICE_NAME": WORKER_SERVICE_NAME,
        }
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                *image.argv,
                env=env,
                cwd=image.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        worker = cls(process, f"{host}:{port}")
        try:
            await wait_for_grpc_health_async(
                worker.address, "", _READY_TIMEOUT_SECONDS, worker._exit_reason
            )
        except NotReadyError as error:
            await worker.stop()
            tail = (await asyncio.to_thread(log_path.read_text, errors="replace"))[-_TAIL_CHARS:]
            raise WorkerUnavailable(
                f"a second summary worker did not start: {error}\n{tail}"
            ) from error
        return worker

    def _exit_reason(self) -> str | None:
        code = self._process.returncode
        return None if code is None else f"exited with {code}"

    async def stop(self) -> None:
        """SIGTERM (it finishes the jobs it holds), then SIGKILL after a grace period."""
        if self._process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self._process.wait(), _STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await self._process.wait()
