"""Run the fault suite: start the stack, each scenario in turn, the checks, the report."""

from __future__ import annotations

import asyncio
import platform
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from devstack.bench import table
from devstack.chaos import faults, idempotency
from devstack.chaos.report import Result, markdown, text_table
from devstack.chaos.stack import ChaosConfig, ChaosStack, running_chaos_stack
from devstack.chaos.world import FULL, SHORT, Timing, World, prepare

Scenario = Callable[[World], Awaitable[Result]]

SCENARIOS: dict[str, Scenario] = {
    "replica-sigterm": lambda world: faults.replica_loss(world, signal.SIGTERM),
    "replica-sigkill": lambda world: faults.replica_loss(world, signal.SIGKILL),
    "postgres-restart": faults.postgres_restart,
    "redis-restart": faults.redis_outage,
    "worker-kill": faults.worker_kill,
}


@dataclass
class SuiteReport:
    results: list[Result]
    idempotency: list[idempotency.Check]
    header_mapped: bool
    seconds: float
    timing: Timing

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results) and all(c.passed for c in self.idempotency)

    def text(self) -> str:
        lines = [
            text_table(self.results),
            "",
            _aligned_idempotency(self.idempotency),
            f"Idempotency-Key header mapped to request_id by the gateway: "
            f"{'yes' if self.header_mapped else 'no (send request_id in the body)'}",
            "",
            f"{'PASS' if self.passed else 'FAIL'} in {self.seconds:.0f} s",
        ]
        return "\n".join(lines)


def _aligned_idempotency(checks: list[idempotency.Check]) -> str:
    return table.aligned(idempotency.HEADERS, idempotency.rows(checks))


async def run_suite(stack: ChaosStack, timing: Timing, names: Sequence[str]) -> SuiteReport:
    started = time.monotonic()
    world = await prepare(stack, timing)
    results: list[Result] = []
    try:
        for name in names:
            _say(f"scenario {name}")
            try:
                result = await SCENARIOS[name](world)
            except Exception as error:  # a scenario that crashes is a failed scenario
                result = Result(name, problems=[f"crashed: {type(error).__name__}: {error}"])
                _say(stack.report())
            results.append(result)
            _say(f"  {'pass' if result.passed else 'FAIL'}: {'; '.join(result.problems)}")
            await faults.ensure_running(stack.members.values())
            if not stack.redis.running:
                await asyncio.to_thread(stack.redis.start)
            await world.all_healthy()
        results.append(faults.deadline_check(stack.deadline_calls()))
        checks, header_mapped = await idempotency.check_all(world)
    finally:
        await world.api.close()
    return SuiteReport(results, checks, header_mapped, time.monotonic() - started, timing)


def run(workdir: Path, *, short: bool, names: Sequence[str] | None = None) -> SuiteReport:
    timing = SHORT if short else FULL
    with running_chaos_stack(ChaosConfig(workdir=workdir)) as stack:
        _say(f"stack up; gateway {stack.gateway_url}; logs in {workdir}")
        return asyncio.run(run_suite(stack, timing, list(names or SCENARIOS)))


def _say(message: str) -> None:
    print(f"chaos | {message}", flush=True)


def document(report: SuiteReport, command: str) -> str:
    """docs/reliability.md: the tables, how they were made, and how to read them."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    timing = report.timing
    return f"""# MedStation reliability: the fault suite

Written by `make chaos` (`python -m devstack.chaos`; the code is in
`libs/devstack/src/devstack/chaos/`, a short version runs in
`libs/devstack/tests/test_chaos.py`). Each scenario is a few seconds of load through the
real Envoy gateway with one fault in the middle, on a stack of its own: every service as
real processes, patient-record as **two replicas** behind one Envoy cluster, and a
PostgreSQL cluster and a redis-server the suite creates on free ports and may crash (the
machine's shared servers are never touched).

Run it with `make chaos` (about two minutes, half of it starting the stack; it needs
nothing running, only PostgreSQL's binaries and redis-server installed). It exits 1 when
a scenario misses a requirement. `python -m devstack.chaos` takes `--short` (less load
per scenario), `--scenario NAME` (repeatable; {", ".join(SCENARIOS)}),
`--out FILE` (write this report) and `--workdir DIR` (keep every process's log there).

## Latest run

- when: {when}
- command: `{command}`
- machine: {platform.node() or "unknown"}, {platform.machine()}, Python {platform.python_version()}
- load per scenario: {timing.load_seconds:g} s, the fault after {timing.fault_after:g} s;
  {timing.read_concurrency} concurrent readers (three GetPatient to one ListPatients, gRPC
  through the gateway, 5 s deadline each), {timing.write_concurrency} concurrent creators
  (CreatePatient with a request_id, retried with the same one after UNAVAILABLE or
  DEADLINE_EXCEEDED, as a careful client does); {timing.jobs} summary jobs where jobs
  are involved.
- result: **{"PASS" if report.passed else "FAIL"}** in {report.seconds:.0f} s

{markdown(report.results)}

Columns: **requests** every call the clients made (retries included); **read errors**
idempotent reads that failed as the client saw them (Envoy's retries are invisible to
it); **create errors (retried)** failed create attempts before the client's own retry
with the same request_id; **lost writes** creates acknowledged to the client but not
readable afterwards; **lost jobs** accepted summary jobs that did not end SUCCEEDED;
**recovery** for a replica, until the last error (0 with none); for PostgreSQL, from
its return until every service is ready and answering with no error after; for Redis,
from its return until every queued job succeeded and every note's event was published;
for the worker, from the kill until every job succeeded.

### Idempotent creates (REST through the gateway)

{_idempotency_markdown(report.idempotency)}

Idempotency-Key header mapped to request_id by the gateway:
{"yes" if report.header_mapped else "**no** — clients send `request_id` in the body"}.

## What each scenario does, and what makes it pass

- **replica SIGTERM**: one patient-record replica is sent SIGTERM. It reports NOT_SERVING
  at once (required within 1 s), keeps serving during its drain
  (`MEDSTATION_SHUTDOWN_DRAIN_SECONDS`, 2 s) while Envoy's 1 s health checks move traffic
  to the other replica, finishes in-flight calls and exits 0. Then it is started again.
- **replica SIGKILL**: the same replica dies at once. Reads in flight on it are reset
  and Envoy retries them on the other host (`retry_on: unavailable,reset,connect-failure`,
  `previous_hosts`, a retry budget instead of the default 3-retry breaker); outlier
  detection and health checks eject the dead host. Creates are never retried by Envoy:
  the client retries them with the same request_id, so none is applied twice.
- **PostgreSQL restart**: `pg_ctl restart -m immediate`. Calls fail with UNAVAILABLE
  (`DATABASE_UNAVAILABLE`, never INTERNAL) while it is down and none outlives its
  deadline; each service's readiness (its named gRPC health service) follows its
  database — a background probe per process — while liveness (`""`) stays SERVING;
  pools reconnect by themselves (pre-ping). Required: recovery within 10 s.
- **Redis stop + start**: Redis is stopped (and comes back empty, as Debian's runs with
  no persistence). Reads, creates, notes, chat messages and job creation go on without
  it: revocation checks and rate limits fail open. Jobs live in PostgreSQL and events in
  the outbox, so once Redis is back the reconciler re-enqueues the jobs and the relay
  publishes the events: every job must succeed and every note's
  `note.created` event must be published.
- **summary worker kill -9**: jobs are queued, the worker is killed while at least one is
  RUNNING, and started again 0.5 s later. Its claims lapse (the suite runs with a 2 s
  lease; production uses `MEDSTATION_JOB_LEASE_SECONDS`, 30 s) and the jobs are taken over:
  every job must end SUCCEEDED.
- **outgoing calls carry a deadline**: the suite routes summary, the summary worker and
  chat to patient-record through a relay that records each call's `grpc-timeout`; every
  call must have one (errors = calls without).

## Not covered here

- An `Idempotency-Key` header is not mapped to `request_id` by the gateway (the
  transcoder fills request fields from the path, query and body only): REST clients put
  `request_id` in the JSON body.
- Summary jobs' and chat replies' streams (`:watch`, `messages:stream`) are never retried
  (a retry would replay what the client already has); a stream cut by a dying replica
  ends early and the client asks again.
- PostgreSQL's own restart time (crash recovery and its checkpoint, several seconds on
  this machine's disk) is PostgreSQL's; the 10 s requirement runs from its return.

## Fuzzing (`make fuzz`)

Schemathesis against the live gateway with real tokens, from the OpenAPI description the
gateway serves at `/openapi.json`; findings and per-operation numbers in
[fuzzing.md](fuzzing.md). Its latest run, as `make fuzz` recorded it:

{fuzz_results(FUZZ_REPORT)}
"""


FUZZ_REPORT = Path(__file__).resolve().parents[5] / "docs" / "fuzzing.md"
_FUZZ_START, _FUZZ_END = "<!-- fuzz-results:start", "<!-- fuzz-results:end -->"


def fuzz_results(report: Path) -> str:
    """The results block `make fuzz` wrote into its report, or a line saying there is none."""
    try:
        text = report.read_text(encoding="utf-8")
    except OSError:
        return "(no fuzzing run recorded yet: run `make fuzz`)"
    start, end = text.find(_FUZZ_START), text.find(_FUZZ_END)
    if start < 0 or end < start:
        return "(no fuzzing run recorded yet: run `make fuzz`)"
    block = text[text.index("\n", start) + 1 : end].strip()
    # Only the summary table: the per-operation one stays in fuzzing.md.
    return block.split("\n\n| operation |")[0]


def _idempotency_markdown(checks: list[idempotency.Check]) -> str:
    return table.markdown(idempotency.HEADERS, idempotency.rows(checks))
