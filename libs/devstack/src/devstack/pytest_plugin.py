"""Fixtures for tests against real servers, loaded by pytest through the `pytest11` entry point.

- `postgres_admin_url`: a PostgreSQL that accepts connections (session).
- `redis_url`: a Redis that answers PING (session).
- `make_database(prefix)`: a fresh database + role for this run, its SQLAlchemy URL;
  all of them dropped at the end of the session.
- `process_runner` / `session_process_runner`: start subprocesses that are always
  stopped, and whose log tails are printed when a test fails.
- `recorded_spans`: every span this process finishes through the global tracer provider
  (installed if none is); `clear()` it before the code under test runs (session).
Helpers to import: `devstack.ports.free_port`, `devstack.health.wait_for_grpc_health`.
"""

from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Callable, Generator, Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from devstack.health import wait_for_grpc_health, wait_for_grpc_health_async
from devstack.ports import free_port
from devstack.postgres import admin_url_from_env, database_url, drop_database, ensure_database
from devstack.postgres import ensure_postgres as _ensure_postgres
from devstack.process_runner import ProcessRunner
from devstack.redis import ensure_redis, redis_url_from_env

__all__ = ["MakeDatabase", "free_port", "wait_for_grpc_health", "wait_for_grpc_health_async"]

MakeDatabase = Callable[[str], str]

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
_MAX_PREFIX = 40  # leaves room for the suffix within PostgreSQL's 63-byte identifiers


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """MEDSTATION_POSTGRES_ADMIN_URL (default: local postgres), the server ensured running."""
    return _ensure_postgres(admin_url_from_env())


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """MEDSTATION_REDIS_URL (default: local Redis db 0), a server ensured answering."""
    return ensure_redis(redis_url_from_env(), tmp_path_factory.mktemp("redis"))


@pytest.fixture(scope="session")
def make_database(postgres_admin_url: str) -> Iterator[MakeDatabase]:
    """Factory: `make_database("user")` -> postgresql+psycopg URL of a new, empty database.

    Each call makes a database and a LOGIN role of the same random name (prefix + suffix)
    that owns it and alone may connect to it; both are dropped when the session ends.
    """
    created: list[str] = []

    def make(prefix: str) -> str:
        name = f"{_slug(prefix)}_{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(18)
        ensure_database(postgres_admin_url, name, name, password)
        created.append(name)
        return database_url(postgres_admin_url, name, name, password)

    yield make
    for name in created:
        drop_database(postgres_admin_url, name, name)


@pytest.fixture(scope="session")
def recorded_spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def process_runner(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcessRunner]:
    """Start subprocesses for one test; stopped after it, log tails shown if it failed."""
    runner = ProcessRunner(tmp_path_factory.mktemp("processes"))
    yield runner
    _report_if_failed(request.node, runner)
    runner.stop_all()


@pytest.fixture(scope="session")
def session_process_runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessRunner]:
    """Like process_runner, for servers shared by a whole session."""
    runner = ProcessRunner(tmp_path_factory.mktemp("session-processes"))
    yield runner
    runner.stop_all()


def _report_if_failed(item: pytest.Item, runner: ProcessRunner) -> None:
    reports = item.stash.get(_REPORTS, {})
    if any(report.failed for report in reports.values()) and runner.processes:
        sys.stderr.write(f"processes started by {item.name}:\n{runner.report()}\n")


def _slug(prefix: str) -> str:
    slug = re.sub(r"[^a-z0-9_]+", "_", prefix.lower()).strip("_")[:_MAX_PREFIX] or "test"
    return slug if slug[0].isalpha() else f"t_{slug}"
