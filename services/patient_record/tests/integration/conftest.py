"""The real patient-record service in-process on a free port, over a migrated PostgreSQL and
Redis, trusting tokens signed by a test key."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from devstack.pytest_plugin import MakeDatabase
from medstation.patient.v1 import patient_service_pb2_grpc as pb_grpc
from medstation_platform.auth.tokens import TokenVerifier
from medstation_platform.migrations import upgrade_to_head
from medstation_platform.rpc.runtime import build_pipeline
from medstation_platform.rpc.server import RunningServer, start_server
from patient_record import bootstrap
from patient_record.__main__ import MIGRATIONS
from patient_record.grpc_api import PUBLIC_METHODS
from patient_record.settings import PatientSettings
from services.patient_record.tests.integration.patient_client import (
    PatientClient,
    TokenIssuer,
)

if TYPE_CHECKING:
    from medstation.patient.v1.patient_service_pb2_grpc import PatientRecordServiceAsyncStub


@pytest.fixture(scope="session")
def database_url(make_database: MakeDatabase) -> str:
    """One fresh database for the session, migrated to head; dropped when it ends."""
    url = make_database("patient_service_tests")
    upgrade_to_head(MIGRATIONS, url)
    return url


@pytest.fixture(scope="session")
def issuer() -> TokenIssuer:
    return TokenIssuer()


@pytest.fixture
def verifier(issuer: TokenIssuer) -> TokenVerifier:
    return issuer.verifier()


@pytest.fixture
def settings(database_url: str, redis_url: str) -> PatientSettings:
    return PatientSettings(
        grpc_port=0,
        database_url=database_url,
        redis_url=redis_url,
        # Each test its own stream: what a test reads back is what it caused.
        events_stream=f"test.patient.events.{secrets.token_hex(6)}",
    )


@pytest.fixture
async def service(
    settings: PatientSettings, verifier: TokenVerifier
) -> AsyncIterator[bootstrap.PatientService]:
    service = await bootstrap.build(settings, verifier=verifier)
    yield service
    await service.redis.delete(settings.events_stream)
    await service.close()


async def serve(service: bootstrap.PatientService) -> RunningServer:
    pipeline = build_pipeline(
        domain=bootstrap.DOMAIN, verifier=service.verifier, public_methods=PUBLIC_METHODS
    )
    return await start_server(
        host="127.0.0.1", port=0, bindings=[service.binding], interceptors=[pipeline]
    )


@pytest.fixture
async def server(service: bootstrap.PatientService) -> AsyncIterator[RunningServer]:
    running = await serve(service)
    yield running
    await running.stop(grace_seconds=0)


@pytest.fixture
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> PatientRecordServiceAsyncStub:
    return pb_grpc.PatientRecordServiceStub(channel)


@pytest.fixture
def client(stub: PatientRecordServiceAsyncStub, issuer: TokenIssuer) -> PatientClient:
    return PatientClient(stub, issuer)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """Direct access for what no RPC shows: raw rows, triggers, query plans."""
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()
