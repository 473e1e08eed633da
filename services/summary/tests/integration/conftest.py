"""The real patient-record and summary services in-process on free ports, over migrated
PostgreSQL databases and Redis, trusting tokens signed by a test key; workers on demand."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from opentelemetry.trace import Tracer
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from devstack.pytest_plugin import MakeDatabase
from medstation.patient.v1 import patient_service_pb2_grpc as patient_grpc
from medstation.summary.v1 import summary_service_pb2_grpc as summary_grpc
from medstation_llm.model import Summarizer
from medstation_platform.auth.tokens import TokenVerifier
from medstation_platform.migrations import upgrade_to_head
from medstation_platform.rpc.runtime import build_pipeline
from medstation_platform.rpc.server import RunningServer, start_server
from patient_record import bootstrap as patient_bootstrap
from patient_record.__main__ import MIGRATIONS as PATIENT_MIGRATIONS
from patient_record.grpc_api import PUBLIC_METHODS as PATIENT_PUBLIC_METHODS
from patient_record.settings import PatientSettings
from services.patient_record.tests.integration.patient_client import (
    PatientClient,
    TokenIssuer,
)
from summary import bootstrap
from summary.__main__ import MIGRATIONS
from summary.grpc_api import PUBLIC_METHODS
from summary.settings import SummarySettings

if TYPE_CHECKING:
    from medstation.summary.v1.summary_service_pb2_grpc import SummaryServiceAsyncStub

StartWorker = Callable[..., Awaitable[bootstrap.WorkerProcess]]
ServeSummary = Callable[..., Awaitable[RunningServer]]


@pytest.fixture(scope="session")
def summary_database_url(make_database: MakeDatabase) -> str:
    url = make_database("summary_service_tests")
    upgrade_to_head(MIGRATIONS, url)
    return url


@pytest.fixture(scope="session")
def patient_database_url(make_database: MakeDatabase) -> str:
    url = make_database("summary_tests_patient")
    upgrade_to_head(PATIENT_MIGRATIONS, url)
    return url


@pytest.fixture(scope="session")
def issuer() -> TokenIssuer:
    return TokenIssuer()


@pytest.fixture
def verifier(issuer: TokenIssuer) -> TokenVerifier:
    return issuer.verifier()


@pytest.fixture
def events_stream() -> str:
    """Each test its own patient event stream: what a test sees is what it caused."""
    return f"test.patient.events.{secrets.token_hex(6)}"


@pytest.fixture
async def patient_server(
    patient_database_url: str, redis_url: str, events_stream: str, verifier: TokenVerifier
) -> AsyncIterator[RunningServer]:
    """The real patient-record service, its outbox relayed to `events_stream`."""
    settings = PatientSettings(
        grpc_port=0,
        database_url=patient_database_url,
        redis_url=redis_url,
        events_stream=events_stream,
    )
    service = await patient_bootstrap.build(settings, verifier=verifier)
    pipeline = build_pipeline(
        domain=patient_bootstrap.DOMAIN,
        verifier=service.verifier,
        public_methods=PATIENT_PUBLIC_METHODS,
    )
    running = await start_server(
        host="127.0.0.1", port=0, bindings=[service.binding], interceptors=[pipeline]
    )
    stopping = asyncio.Event()
    relaying = asyncio.create_task(service.relay.run(stopping))
    yield running
    stopping.set()
    await relaying
    await running.stop(grace_seconds=0)
    await service.redis.delete(events_stream)
    await service.close()


@pytest.fixture
async def patients(
    patient_server: RunningServer, issuer: TokenIssuer
) -> AsyncIterator[PatientClient]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{patient_server.port}") as channel:
        yield PatientClient(patient_grpc.PatientRecordServiceStub(channel), issuer)


@pytest.fixture
def settings(
    summary_database_url: str, redis_url: str, events_stream: str, patient_server: RunningServer
) -> SummarySettings:
    return summary_settings(
        database_url=summary_database_url,
        redis_url=redis_url,
        patient_service_addr=f"127.0.0.1:{patient_server.port}",
        events_stream=events_stream,
    )


def summary_settings(**overrides: Any) -> SummarySettings:
    """Quick leases and passes, so that recovery happens within a test's patience."""
    values: dict[str, Any] = {
        "grpc_port": 0,
        "jobs_stream": f"test.summary.jobs.{secrets.token_hex(6)}",
        "job_timeout_seconds": 20.0,
        "job_lease_seconds": 3.0,
        "job_claim_idle_seconds": 6.0,
        "job_requeue_after_seconds": 1.0,
        "reconcile_interval_seconds": 0.2,
        "watch_poll_seconds": 0.05,
        "shutdown_grace_seconds": 1.0,
        **overrides,
    }
    return SummarySettings(**values)


@pytest.fixture
async def serve_summary(verifier: TokenVerifier) -> AsyncIterator[ServeSummary]:
    """Starts summary services: `await serve_summary(settings, interceptors=[...])`."""
    started: list[tuple[bootstrap.SummaryService, RunningServer, SummarySettings]] = []

    async def serve(
        settings: SummarySettings, *, interceptors: list[Any] | None = None
    ) -> RunningServer:
        service = await bootstrap.build(settings, verifier=verifier)
        pipeline = build_pipeline(
            domain=bootstrap.DOMAIN, verifier=service.verifier, public_methods=PUBLIC_METHODS
        )
        running = await start_server(
            host="127.0.0.1",
            port=0,
            bindings=[service.binding],
            interceptors=[*(interceptors or []), pipeline],
        )
        started.append((service, running, settings))
        return running

    yield serve
    for service, running, settings in reversed(started):
        await running.stop(grace_seconds=0)
        with contextlib.suppress(RedisError):  # a test may have stopped its Redis
            await service.redis.delete(settings.jobs_stream)
        await service.close()


@pytest.fixture
async def summary_server(serve_summary: ServeSummary, settings: SummarySettings) -> RunningServer:
    return await serve_summary(settings)


@pytest.fixture
async def summaries(summary_server: RunningServer) -> AsyncIterator[SummaryServiceAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{summary_server.port}") as channel:
        yield summary_grpc.SummaryServiceStub(channel)


@pytest.fixture
async def start_worker(settings: SummarySettings) -> AsyncIterator[StartWorker]:
    """Starts in-process workers (`await start_worker()`), each stopped after the test."""
    started: list[tuple[bootstrap.WorkerProcess, asyncio.Event, asyncio.Task[None]]] = []

    async def start(
        worker_settings: SummarySettings | None = None,
        *,
        summarizer: Summarizer | None = None,
        tracer: Tracer | None = None,
    ) -> bootstrap.WorkerProcess:
        process = await bootstrap.build_worker(
            worker_settings or settings, summarizer=summarizer, tracer=tracer
        )
        stopping = asyncio.Event()
        started.append((process, stopping, asyncio.create_task(process.worker.run(stopping))))
        return process

    yield start
    for process, stopping, task in reversed(started):
        stopping.set()
        await asyncio.wait_for(task, timeout=30)
        await process.close()


@pytest.fixture
async def engine(summary_database_url: str) -> AsyncIterator[AsyncEngine]:
    """Direct access to the summary database, for what no RPC shows (rows, attempts)."""
    engine = create_async_engine(summary_database_url)
    yield engine
    await engine.dispose()
