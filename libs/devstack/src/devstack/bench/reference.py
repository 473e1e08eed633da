"""The FastAPI reference, measured in the same run: its own database and table, seeded
once; uvicorn with one worker; wrk at the same levels as the scenarios.

The database (`medstation_bench_reference`, a role of the same name) lives on the stack's
PostgreSQL server beside the services' databases, so both read from the same server. Its
patients table has the columns of a MedStation patient and as many rows as the bench has
patients; a re-run finds them there. The app needs FastAPI and uvicorn, which only
requirements-bench.txt installs: without them the reference is skipped, saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg

from devstack.bench import cpu_groups
from devstack.bench.baselines import FASTAPI, BaselineResult, measure_levels
from devstack.bench.load_stats import LoadStats
from devstack.bench.plan import RunPlan
from devstack.bench.reference_app import DATABASE_URL_VARIABLE, TABLE
from devstack.bench.wrk import HttpRequest, run_wrk
from devstack.demo_people import namespace_uuid, patient_spec
from devstack.health import NotReadyError, wait_for_http_ok
from devstack.ports import free_port
from devstack.postgres import database_url, ensure_database
from devstack.process_runner import ProcessRunner

DATABASE = "medstation_bench_reference"
ROLE = DATABASE
PASSWORD = f"{ROLE}-local-dev"  # loopback only, like `make run`'s service roles
NAMESPACE = "bench-reference"
MRN_PREFIX = "RF"
REQUIRED_MODULES = ("fastapi", "uvicorn", "uvloop", "httptools")
_READY_SECONDS = 30.0
_CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    date_of_birth date NOT NULL,
    sex text NOT NULL,
    mrn text UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
)"""
_INSERT = (
    f"INSERT INTO {TABLE} (id, name, date_of_birth, sex, mrn) "  # noqa: S608  # constant
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
)


class ReferenceUnavailable(RuntimeError):
    """The reference app cannot run here; the message says why (for a `skipped:` line)."""


@dataclass(frozen=True)
class ReferenceApp:
    url: str
    patient_ids: tuple[str, ...]


def missing_modules() -> list[str]:
    return [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]


def reference_ids(count: int) -> tuple[str, ...]:
    """The primary keys of the reference's rows: the same on every run and machine."""
    namespace = namespace_uuid(NAMESPACE)
    return tuple(str(uuid.uuid5(namespace, f"patient/{index}")) for index in range(count))


def prepare_database(admin_url: str, count: int) -> tuple[str, tuple[str, ...]]:
    """Its database, table and `count` rows (made when missing); its URL and the row ids."""
    ensure_database(admin_url, DATABASE, ROLE, PASSWORD)
    url = database_url(admin_url, DATABASE, ROLE, PASSWORD, scheme="postgresql")
    ids = reference_ids(count)
    namespace = namespace_uuid(NAMESPACE)
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as connection:
        connection.execute(_CREATE_TABLE)
        row = connection.execute(f"SELECT count(*) FROM {TABLE}").fetchone()  # noqa: S608
        if row is None or row[0] < count:
            with connection.cursor() as cursor:
                cursor.executemany(
                    _INSERT,
                    [
                        (patient_id, spec.name, spec.date_of_birth, spec.sex, spec.mrn)
                        for index, patient_id in enumerate(ids)
                        for spec in (patient_spec(namespace, index, MRN_PREFIX),)
                    ],
                )
            connection.execute(f"ANALYZE {TABLE}")
    return database_url(admin_url, DATABASE, ROLE, PASSWORD), ids


@contextlib.asynccontextmanager
async def reference_app(admin_url: str, count: int, workdir: Path) -> AsyncIterator[ReferenceApp]:
    """The app up (uvicorn, one worker) and answering a point read; stopped afterwards."""
    if missing := missing_modules():
        raise ReferenceUnavailable(
            f"{', '.join(missing)} not installed (`make bench` installs requirements-bench.txt)"
        )
    url, ids = await asyncio.to_thread(prepare_database, admin_url, count)
    port = free_port()
    runner = ProcessRunner(workdir)
    process = runner.start("fastapi-reference", uvicorn_command(port), {DATABASE_URL_VARIABLE: url})
    base_url = f"http://127.0.0.1:{port}"

    def exited() -> str | None:
        return None if process.alive() else f"exited:\n{process.log_tail()}"

    try:
        await wait_for_http_ok(f"{base_url}/patients/{ids[0]}", _READY_SECONDS, exited)
    except NotReadyError as error:
        await asyncio.to_thread(runner.stop_all)
        raise ReferenceUnavailable(f"the FastAPI reference did not start: {error}") from error
    try:
        yield ReferenceApp(base_url, ids)
    finally:
        await asyncio.to_thread(runner.stop_all)


def uvicorn_command(port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "--factory", "devstack.bench.reference_app:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def point_reads(ids: Sequence[str]) -> list[HttpRequest]:
    return [HttpRequest("GET", f"/patients/{patient_id}") for patient_id in ids]


async def measure_reference(
    app: ReferenceApp, plan: RunPlan, wrk: str, *, workdir: Path, log: Callable[[str], None]
) -> list[BaselineResult]:
    """Point reads of a different row each request, every level, with wrk."""
    readers = cpu_groups.readers({cpu_groups.SERVICE: [cpu_groups.port_of(app.url)]})
    cycle = point_reads(app.patient_ids)
    cursor = 0

    async def load(level: int, seconds: float) -> LoadStats:
        nonlocal cursor
        stats = await run_wrk(
            wrk, app.url, cycle, None, concurrency=level, duration=seconds, start=cursor,
            workdir=workdir,
        )  # fmt: skip
        cursor += stats.requests
        return stats

    return await measure_levels(
        FASTAPI,
        plan.concurrency,
        warmup=plan.warmup,
        duration=plan.duration,
        load=load,
        readers=readers,
        log=log,
    )
