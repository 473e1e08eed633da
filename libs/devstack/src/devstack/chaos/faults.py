"""The fault scenarios: each a few seconds of load, one fault, and the checks that follow.

Every wait has a hard cap; the only timed requirements are the product's own (NOT_SERVING
within 1 s of SIGTERM, recovery within 10 s of PostgreSQL's return).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable

import grpc
import grpc.aio
import psycopg
import redis.asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.chaos import envoy_stats
from devstack.chaos.api import CALL_TIMEOUT_SECONDS
from devstack.chaos.load import (
    Outcomes,
    Writes,
    missing_patients,
    read_load,
    write_load,
)
from devstack.chaos.report import Result
from devstack.chaos.stack import PATIENT, WORKER, Member
from devstack.chaos.world import World, note_text

NOT_SERVING_WITHIN_SECONDS = 1.0  # after SIGTERM (issue 8, §2)
RECOVERY_WITHIN_SECONDS = 10.0  # after PostgreSQL is back (issue 8, §3)
# Hard caps on waits for the system; exceeding one is reported, never waited out.
_JOBS_CAP_SECONDS = 60.0
_EVENTS_CAP_SECONDS = 30.0
_READY_CAP_SECONDS = 30.0
_POLL_SECONDS = 0.1
# A call must end by its deadline; this much later still counts as on time (scheduling).
_DEADLINE_SLACK_SECONDS = 1.0
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


# ---- replicas ----


async def replica_loss(world: World, signum: signal.Signals) -> Result:
    """One of patient-record's replicas gets `signum` while reads and creates flow."""
    result = Result(f"patient-record replica {signum.name} under load")
    victim = world.stack.patient_replicas()[-1]
    timing = world.timing
    reads, writes = Outcomes(), Writes()
    counters = await envoy_stats.cluster_counters(world.stack.envoy_admin_url, PATIENT)
    load = asyncio.gather(
        read_load(
            world.api, world.read_ids, reads,
            concurrency=timing.read_concurrency, duration=timing.load_seconds,
        ),
        write_load(
            world.api, writes, concurrency=timing.write_concurrency, duration=timing.load_seconds
        ),
    )  # fmt: skip
    await asyncio.sleep(timing.fault_after)
    async with grpc.aio.insecure_channel(victim.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        await _health(health, victim.health_service)  # connected before the signal
        fault_at = time.monotonic()
        victim.send(signum)
        not_serving_after = None
        if signum == signal.SIGTERM:
            not_serving_after = await _until_not_serving(health, victim.health_service)
    code = await asyncio.to_thread(victim.wait_exit, 30)
    exited_after = time.monotonic() - fault_at
    await load
    after = await envoy_stats.cluster_counters(world.stack.envoy_admin_url, PATIENT)
    missing = await missing_patients(world.api, writes.acknowledged)

    _count_load(result, reads, writes, missing)
    result.notes.append(envoy_stats.describe(counters, after))
    result.recovery_seconds = _recovery(fault_at, reads.last_error_at())
    result.require(reads.errors == 0, f"{reads.errors} idempotent reads failed {_kinds(reads)}")
    if signum == signal.SIGTERM:
        if not_serving_after is None:
            result.problems.append("never reported NOT_SERVING after SIGTERM")
        else:
            result.notes.append(f"NOT_SERVING {not_serving_after * 1000:.0f} ms after SIGTERM")
            result.require(
                not_serving_after <= NOT_SERVING_WITHIN_SECONDS,
                f"NOT_SERVING only after {not_serving_after:.2f} s",
            )
        result.require(code == 0, f"exited with {code} after SIGTERM, not 0")
        result.notes.append(f"drained and exited {code} after {exited_after:.1f} s")
    # Back to two replicas for the next scenario, as a supervisor would restart it.
    victim.start()
    await victim.wait_ready_async()
    await world.all_healthy()
    return result


async def _health(health: health_pb2_grpc.HealthStub, service: str) -> int:
    response = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
    status: int = response.status
    return status


async def _until_not_serving(health: health_pb2_grpc.HealthStub, service: str) -> float | None:
    """Seconds from now until the named service says NOT_SERVING; None if it never does."""
    started = time.monotonic()
    while time.monotonic() - started < 3 * NOT_SERVING_WITHIN_SECONDS:
        try:
            if await _health(health, service) == _NOT_SERVING:
                return time.monotonic() - started
        except grpc.aio.AioRpcError:
            return None  # gone without draining
        await asyncio.sleep(0.01)
    return None


# ---- PostgreSQL ----


async def postgres_restart(world: World) -> Result:
    """`pg_ctl restart -m immediate` of the services' PostgreSQL under load."""
    result = Result("PostgreSQL restart -m immediate under load")
    timing = world.timing
    reads, writes = Outcomes(), Writes()
    probes: dict[str, Outcomes] = {name: Outcomes() for name in _PROBES}
    stop_probes = asyncio.Event()
    probing = asyncio.create_task(_probe_every_service(world, probes, stop_probes))
    load = asyncio.gather(
        read_load(
            world.api, world.read_ids, reads,
            concurrency=timing.read_concurrency, duration=timing.load_seconds,
        ),
        write_load(
            world.api, writes, concurrency=timing.write_concurrency, duration=timing.load_seconds
        ),
    )  # fmt: skip
    await asyncio.sleep(timing.fault_after)
    fault_at = time.monotonic()
    await asyncio.to_thread(world.stack.postgres.restart_immediate)
    back_at = time.monotonic()
    ready_at = await _until_every_service_ready(world)
    await load
    answered_at = await _until_every_probe_succeeds_since(probes, back_at)
    stop_probes.set()
    await probing
    missing = await missing_patients(world.api, writes.acknowledged)

    _count_load(result, reads, writes, missing)
    everything = [reads, writes.attempts, *probes.values()]
    result.requests += sum(outcomes.requests for outcomes in probes.values())
    last_error = max((t for o in everything if (t := o.last_error_at()) is not None), default=None)
    recovered_at = max(
        [t for t in (last_error, ready_at, answered_at) if t is not None], default=back_at
    )
    result.recovery_seconds = max(0.0, recovered_at - back_at)
    result.notes.append(f"PostgreSQL down {back_at - fault_at:.1f} s")
    if ready_at is not None:
        result.notes.append(f"every service ready {max(0.0, ready_at - back_at):.1f} s after")
    kinds = sum((o.kinds() for o in everything), Counter[str]())
    result.notes.append(f"errors by code: {dict(kinds) or 'none'}")
    result.require(ready_at is not None, "a service never reported ready again")
    result.require(answered_at is not None, "a service never answered again")
    result.require(
        result.recovery_seconds <= RECOVERY_WITHIN_SECONDS,
        f"recovered after {result.recovery_seconds:.1f} s (limit {RECOVERY_WITHIN_SECONDS:g} s)",
    )
    result.require(set(kinds) <= {"UNAVAILABLE"}, f"errors other than UNAVAILABLE: {dict(kinds)}")
    slowest = max(o.slowest() for o in everything)
    result.notes.append(f"slowest call {slowest:.1f} s (deadline {CALL_TIMEOUT_SECONDS:g} s)")
    result.require(
        slowest <= CALL_TIMEOUT_SECONDS + _DEADLINE_SLACK_SECONDS,
        f"a call took {slowest:.1f} s, past its {CALL_TIMEOUT_SECONDS:g} s deadline",
    )
    return result


_PROBES = ("user", PATIENT, "summary", "chat")


async def _probe_every_service(
    world: World, probes: dict[str, Outcomes], stop: asyncio.Event
) -> None:
    """One read per service through the gateway, every 0.2 s, until `stop`."""
    api = world.api
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "user": lambda: api.users_me(),
        PATIENT: lambda: api.get_patient(world.read_ids[0]),
        "summary": lambda: api.list_summaries(world.chart_ids[0]),
        "chat": lambda: api.list_chats(),
    }

    async def probe(name: str) -> None:
        sent = time.monotonic()
        try:
            await calls[name]()
        except grpc.aio.AioRpcError as error:
            probes[name].add(sent, error.code().name)
        else:
            probes[name].add(sent, "OK")

    while not stop.is_set():
        await asyncio.gather(*(probe(name) for name in probes), asyncio.sleep(0.2))


async def _until_every_service_ready(world: World) -> float | None:
    """When every service process reported its named service SERVING again (or None)."""
    members = [m for m in world.stack.members.values() if m.health_service]
    deadline = time.monotonic() + _READY_CAP_SECONDS
    async with contextlib.AsyncExitStack() as stack:
        stubs = []
        for member in members:
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(member.address))
            stubs.append((member, health_pb2_grpc.HealthStub(channel)))
        while time.monotonic() < deadline:
            statuses = await asyncio.gather(
                *(_health(stub, member.health_service) for member, stub in stubs),
                return_exceptions=True,
            )
            if all(status == _SERVING for status in statuses):
                return time.monotonic()
            await asyncio.sleep(_POLL_SECONDS)
    return None


async def _until_every_probe_succeeds_since(
    probes: dict[str, Outcomes], since: float
) -> float | None:
    deadline = time.monotonic() + _READY_CAP_SECONDS
    while time.monotonic() < deadline:
        firsts = [
            min((o.at for o in outcomes.items if o.at >= since and o.code == "OK"), default=None)
            for outcomes in probes.values()
        ]
        if all(first is not None for first in firsts):
            return max(first for first in firsts if first is not None)
        await asyncio.sleep(_POLL_SECONDS)
    return None


# ---- Redis ----


async def redis_outage(world: World) -> Result:
    """Redis stopped under load (everything in it lost), jobs and notes created meanwhile."""
    result = Result("Redis stop + start (empty) under load, jobs queued")
    timing = world.timing
    stack = world.stack
    reads, writes, others = Outcomes(), Writes(), Outcomes()
    job_ids: list[str] = []
    note_ids: list[str] = []
    load = asyncio.gather(
        read_load(
            world.api, world.read_ids, reads,
            concurrency=timing.read_concurrency, duration=timing.load_seconds,
        ),
        write_load(
            world.api, writes, concurrency=timing.write_concurrency, duration=timing.load_seconds
        ),
    )  # fmt: skip
    await asyncio.sleep(timing.fault_after)
    down_at = time.monotonic()
    await asyncio.to_thread(stack.redis.stop)
    await asyncio.gather(
        _create_jobs(world, timing.jobs, job_ids, others),
        _create_notes(world, 10, note_ids, others),
        _send_messages(world, 3, others),
    )
    # Down for half the load, at least: revocation checks and rate limits all bypassed.
    await asyncio.sleep(max(0.0, down_at + timing.load_seconds / 2 - time.monotonic()))
    await asyncio.to_thread(stack.redis.start)
    up_at = time.monotonic()
    await load
    jobs_done_at, unfinished = await _until_jobs_done(world, job_ids)
    events_at, undelivered = await _until_events_delivered(world, note_ids)
    missing = await missing_patients(world.api, writes.acknowledged)

    _count_load(result, reads, writes, missing)
    result.requests += others.requests
    result.write_errors += others.errors
    result.lost_jobs = len(unfinished)
    done_at = max(t for t in (jobs_done_at, events_at, up_at) if t is not None)
    result.recovery_seconds = done_at - up_at
    result.notes.append(
        f"Redis down {up_at - down_at:.1f} s; {len(job_ids)} jobs and {len(note_ids)} notes "
        f"accepted meanwhile; {len(note_ids) - len(undelivered)}/{len(note_ids)} note events "
        "delivered after"
    )
    result.require(reads.errors == 0, f"{reads.errors} reads failed {_kinds(reads)}")
    result.require(
        writes.attempts.errors + others.errors == 0,
        f"creates failed while Redis was down: {dict(writes.attempts.kinds() + others.kinds())}",
    )
    result.require(not unfinished, f"{len(unfinished)} jobs never succeeded: {unfinished}")
    result.require(not undelivered, f"{len(undelivered)} note.created events never published")
    return result


async def _create_jobs(world: World, count: int, job_ids: list[str], outcomes: Outcomes) -> None:
    async def create(number: int) -> None:
        sent = time.monotonic()
        try:
            job = await world.api.create_job(world.chart_ids[number % len(world.chart_ids)])
        except grpc.aio.AioRpcError as error:
            outcomes.add(sent, error.code().name)
        else:
            outcomes.add(sent, "OK")
            job_ids.append(str(job.id))

    await asyncio.gather(*(create(number) for number in range(count)))


async def _create_notes(world: World, count: int, note_ids: list[str], outcomes: Outcomes) -> None:
    for number in range(count):
        sent = time.monotonic()
        try:
            note = await world.api.create_note(world.read_ids[number], note_text(number))
        except grpc.aio.AioRpcError as error:
            outcomes.add(sent, error.code().name)
        else:
            outcomes.add(sent, "OK")
            note_ids.append(str(note.id))


async def _send_messages(world: World, count: int, outcomes: Outcomes) -> None:
    for number in range(count):
        sent = time.monotonic()
        try:
            await world.api.send_message(world.chat_id, f"What is the plan? ({number})")
        except grpc.aio.AioRpcError as error:
            outcomes.add(sent, error.code().name)
        else:
            outcomes.add(sent, "OK")


async def _until_jobs_done(world: World, job_ids: list[str]) -> tuple[float | None, list[str]]:
    """When every job had succeeded (None if not within the cap), and those that did not."""
    deadline = time.monotonic() + _JOBS_CAP_SECONDS
    pending = set(job_ids)
    failed: list[str] = []
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            try:
                job = await world.api.get_job(job_id)
            except grpc.aio.AioRpcError:
                continue  # asked again on the next round
            if job.state == "SUCCEEDED":
                pending.discard(job_id)
            elif job.state == "FAILED":
                pending.discard(job_id)
                failed.append(f"{job_id} FAILED: {job.error}")
        if pending:
            await asyncio.sleep(_POLL_SECONDS * 3)
    unfinished = failed + [f"{job_id} not done" for job_id in sorted(pending)]
    return (None if unfinished else time.monotonic()), unfinished


async def _until_events_delivered(
    world: World, note_ids: list[str]
) -> tuple[float | None, list[str]]:
    """When a note.created event of every note was in the events stream, and those never."""
    client = redis.asyncio.Redis.from_url(
        world.stack.redis.url, socket_timeout=2, decode_responses=True
    )
    deadline = time.monotonic() + _EVENTS_CAP_SECONDS
    wanted = set(note_ids)
    try:
        while time.monotonic() < deadline:
            seen = await _published_note_ids(client, world.stack.events_stream)
            if wanted <= seen:
                return time.monotonic(), []
            await asyncio.sleep(_POLL_SECONDS * 3)
        return None, sorted(wanted - await _published_note_ids(client, world.stack.events_stream))
    finally:
        await client.aclose()


async def _published_note_ids(client: redis.asyncio.Redis, stream: str) -> set[str]:
    entries = await client.xrange(stream) or []
    found = set()
    for _, fields in entries:
        if fields and fields.get("event_type") == "note.created":
            found.add(str(json.loads(str(fields["payload"])).get("note_id")))
    return found


# ---- the summary worker ----


async def worker_kill(world: World) -> Result:
    """`kill -9` of the summary worker while it runs jobs; it is started again after 0.5 s."""
    result = Result("summary worker kill -9 mid-job")
    worker = world.stack.members[WORKER]
    job_ids: list[str] = []
    creations = Outcomes()
    await _create_jobs(world, world.timing.jobs, job_ids, creations)
    result.requests = creations.requests
    result.write_errors = creations.errors
    conninfo = world.stack.database_urls["summary"].replace(
        "postgresql+psycopg://", "postgresql://"
    )
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as db:
        running = await _until_a_job_runs(db, job_ids)
        killed_at = time.monotonic()
        worker.send(signal.SIGKILL)
        await asyncio.to_thread(worker.wait_exit, 10)
        await asyncio.sleep(0.5)  # a supervisor's restart delay
        worker.start()
        await worker.wait_ready_async()
        done_at, unfinished = await _until_jobs_done(world, job_ids)
        attempts = await _attempts(db, job_ids)
    result.lost_jobs = len(unfinished)
    if done_at is not None:
        result.recovery_seconds = done_at - killed_at
    result.require(running > 0, "no job was running when the worker was killed")
    result.require(not unfinished, f"{len(unfinished)} jobs never succeeded: {unfinished}")
    result.require(creations.errors == 0, f"job creation failed: {dict(creations.kinds())}")
    retried = sum(1 for count in attempts.values() if count > 1)
    result.notes.append(
        f"{running} of {len(job_ids)} jobs running at the kill; {retried} taken over "
        "(a second attempt) after the lease lapsed"
    )
    return result


async def _until_a_job_runs(
    db: psycopg.AsyncConnection[tuple[object, ...]], job_ids: list[str]
) -> int:
    """How many of the jobs are RUNNING, as soon as one is (0 if none within the cap)."""
    deadline = time.monotonic() + _READY_CAP_SECONDS
    while time.monotonic() < deadline:
        row = await (
            await db.execute(
                "SELECT count(*) FROM summary_jobs WHERE state = 'RUNNING' AND id = ANY(%s)",
                (job_ids,),
            )
        ).fetchone()
        if row is not None and int(str(row[0])) > 0:
            return int(str(row[0]))
        await asyncio.sleep(0.005)
    return 0


async def _attempts(
    db: psycopg.AsyncConnection[tuple[object, ...]], job_ids: list[str]
) -> dict[str, int]:
    rows = await (
        await db.execute(
            "SELECT id::text, attempts FROM summary_jobs WHERE id = ANY(%s)", (job_ids,)
        )
    ).fetchall()
    return {str(job_id): int(str(count)) for job_id, count in rows}


# ---- shared ----


def _count_load(result: Result, reads: Outcomes, writes: Writes, missing: list[str]) -> None:
    result.requests += reads.requests + writes.attempts.requests
    result.read_errors += reads.errors
    result.write_errors += writes.attempts.errors
    result.lost_writes = len(missing)
    result.notes.append(
        f"{len(writes.acknowledged)} creates acknowledged"
        + (f", {sum(writes.failed.values())} given up" if writes.failed else "")
    )
    result.require(not missing, f"{len(missing)} acknowledged patients missing: {missing[:3]}")
    result.require(not writes.failed, f"creates given up: {dict(writes.failed)}")


def _recovery(fault_at: float, last_error_at: float | None) -> float:
    return 0.0 if last_error_at is None else max(0.0, last_error_at - fault_at)


def _kinds(outcomes: Outcomes) -> dict[str, int]:
    return dict(outcomes.kinds())


def deadline_check(calls: Iterable[dict[str, object]]) -> Result:
    """Every call summary, its worker and chat made to patient-record carried a deadline."""
    result = Result("outgoing calls carry a deadline (summary, worker, chat → patient-record)")
    recorded = list(calls)
    unbounded = [call for call in recorded if call.get("remaining") is None]
    result.requests = len(recorded)
    result.read_errors = len(unbounded)
    methods = Counter(str(call["method"]).rsplit("/", 1)[-1] for call in recorded)
    longest = max(
        (float(str(call["remaining"])) for call in recorded if call.get("remaining") is not None),
        default=0.0,
    )
    result.notes.append(f"{dict(methods)}; longest deadline {longest:.1f} s")
    result.require(bool(recorded), "no call to patient-record was recorded")
    result.require(not unbounded, f"{len(unbounded)} calls without a deadline")
    return result


async def ensure_running(members: Iterable[Member]) -> None:
    """Start again whatever a failed scenario left stopped."""
    for member in members:
        if not member.alive:
            member.start()
            await member.wait_ready_async()


__all__ = [
    "deadline_check",
    "ensure_running",
    "postgres_restart",
    "redis_outage",
    "replica_loss",
    "worker_kill",
]
