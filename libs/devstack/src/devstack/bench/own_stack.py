"""A stack of the bench's own, when none answers where `make bench` looks (the `make run`
ports): `python -m devstack run`, the very code `make run` runs, started as a child with
the limits a benchmark must not meet raised, waited for, and stopped after the run.

Raised: the chat service's per-user send limit (the bench sends as one user) and the
gateway's token bucket, so no level is answered 429. Both limiters still run on every
request; they only never refuse. Tracing runs at the documented production sampling
(one request in ten, decided at the gateway) unless OTEL_TRACES_SAMPLER says otherwise.
Readiness is asked, never slept for: the gateway's /healthz (every service SERVING) and
the summary worker's gRPC health.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from devstack.bench.chat_data import LIMIT_VARIABLE, RAISED_LIMIT
from devstack.gateway_config import PRODUCTION_TRACE_SAMPLING_PERCENT
from devstack.health import NotReadyError, wait_for_grpc_health_async, wait_for_http_ok
from devstack.ports import is_port_free

RATE_LIMIT_VARIABLES = (
    "MEDSTATION_GATEWAY_RATE_LIMIT_PER_SECOND",
    "MEDSTATION_GATEWAY_RATE_LIMIT_BURST",
)
RAISED_LIMITS = {LIMIT_VARIABLE: str(RAISED_LIMIT)} | {
    name: str(RAISED_LIMIT) for name in RATE_LIMIT_VARIABLES
}
# Databases created and migrated, four services, a worker, Envoy: well within this.
_READY_SECONDS = 180.0
# Longer than `make run`'s own grace for its children (15 s) plus Envoy's drain.
_STOP_SECONDS = 60.0
_LOG_TAIL_CHARS = 4000


class StackStartError(RuntimeError):
    """The bench's own stack did not come up; the message has the end of its log."""


PRODUCTION_SAMPLING = {
    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    "OTEL_TRACES_SAMPLER_ARG": f"{PRODUCTION_TRACE_SAMPLING_PERCENT / 100:g}",
}


def stack_environment(base: Mapping[str, str]) -> dict[str, str]:
    """`base` with the limits raised: this stack exists only for the bench."""
    sampling = {} if "OTEL_TRACES_SAMPLER" in base else PRODUCTION_SAMPLING
    return {**base, **sampling, **RAISED_LIMITS}


def nothing_listens(ports: list[int]) -> bool:
    """True when none of the stack's front doors is taken (so no stack is running)."""
    return all(is_port_free(port) for port in ports)


def describe() -> str:
    env = stack_environment(os.environ)
    names = [*PRODUCTION_SAMPLING, *RAISED_LIMITS]
    raised = ", ".join(f"{name}={env[name]}" for name in names if name in env)
    return f"stack: started by the bench (`python -m devstack run`, as `make run`) with {raised}"


@contextlib.asynccontextmanager
async def own_stack(
    repo_root: Path, gateway_url: str, worker_addr: str | None, log_path: Path
) -> AsyncIterator[None]:
    """The stack running until the block ends; StackStartError if it does not come up."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "devstack", "run",
            cwd=repo_root, env=stack_environment(os.environ),
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C at the terminal reaches the bench, which stops it
        )  # fmt: skip

    def exited() -> str | None:
        code = process.returncode
        return None if code is None else f"`python -m devstack run` exited with {code}"

    try:
        try:
            await wait_for_http_ok(f"{gateway_url}/healthz", _READY_SECONDS, exited)
            if worker_addr:
                await wait_for_grpc_health_async(worker_addr, "", _READY_SECONDS, exited)
        except NotReadyError as error:
            tail = (await asyncio.to_thread(log_path.read_text, errors="replace"))[
                -_LOG_TAIL_CHARS:
            ]
            raise StackStartError(
                f"the bench's own stack did not start: {error}\n{tail}"
            ) from error
        yield
    finally:
        await _stop(process)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM: `devstack run` stops its children in order; SIGKILL its group if it hangs."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), _STOP_SECONDS)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
