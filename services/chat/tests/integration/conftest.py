"""The real chat service in-process on a free port, with the real patient-record service
beside it (each over its own migrated PostgreSQL database, both on the test Redis), both
trusting tokens signed by a test key."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
import msgspec
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import chat.__main__ as chat_main
import patient_record.__main__ as patient_main
from chat import bootstrap
from chat.grpc_api import PUBLIC_METHODS
from chat.settings import ChatSettings
from devstack.pytest_plugin import MakeDatabase
from medstation.chat.v1 import chat_service_pb2_grpc as pb_grpc
from medstation.patient.v1 import patient_service_pb2_grpc as patient_pb_grpc
from medstation_platform.auth.tokens import TokenVerifier
from medstation_platform.migrations import upgrade_to_head
from medstation_platform.rpc.runtime import build_pipeline
from medstation_platform.rpc.server import RunningServer, start_server
from patient_record import bootstrap as patient_bootstrap
from patient_record.grpc_api import PUBLIC_METHODS as PATIENT_PUBLIC_METHODS
from patient_record.settings import PatientSettings
from services.chat.tests.integration.chat_client import ChatClient
from services.patient_record.tests.integration.patient_client import (
    PatientClient,
    TokenIssuer,
)

if TYPE_CHECKING:
    from medstation.chat.v1.chat_service_pb2_grpc import ChatServiceAsyncStub

# A chat service started by a test: settings overrides and language models of its own.
StartChat = Callable[..., Awaitable[tuple[bootstrap.ChatService, ChatClient]]]


@pytest.fixture(scope="session")
def chat_database_url(make_database: MakeDatabase) -> str:
    """One fresh chat database for the session, migrated to head; dropped when it ends."""
    url = make_database("chat_service_tests")
    upgrade_to_head(chat_main.MIGRATIONS, url)
    return url


@pytest.fixture(scope="session")
def patient_database_url(make_database: MakeDatabase) -> str:
    url = make_database("chat_patient_tests")
    upgrade_to_head(patient_main.MIGRATIONS, url)
    return url


@pytest.fixture(scope="session")
def issuer() -> TokenIssuer:
    return TokenIssuer()


@pytest.fixture
def verifier(issuer: TokenIssuer) -> TokenVerifier:
    return issuer.verifier()


@pytest.fixture
async def patient_server(
    patient_database_url: str, redis_url: str, verifier: TokenVerifier
) -> AsyncIterator[RunningServer]:
    settings = PatientSettings(
        grpc_port=0,
        database_url=patient_database_url,
        redis_url=redis_url,
        events_stream=f"test.chat.patient.events.{secrets.token_hex(6)}",
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
    yield running
    await running.stop(grace_seconds=0)
    await service.close()


@pytest.fixture
async def patients(
    patient_server: RunningServer, issuer: TokenIssuer
) -> AsyncIterator[PatientClient]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{patient_server.port}") as channel:
        yield PatientClient(patient_pb_grpc.PatientRecordServiceStub(channel), issuer)


@pytest.fixture
def settings(chat_database_url: str, redis_url: str, patient_server: RunningServer) -> ChatSettings:
    return ChatSettings(
        grpc_port=0,
        database_url=chat_database_url,
        redis_url=redis_url,
        patient_service_addr=f"127.0.0.1:{patient_server.port}",
    )


@pytest.fixture
async def start_chat(
    settings: ChatSettings, verifier: TokenVerifier, issuer: TokenIssuer
) -> AsyncIterator[StartChat]:
    """Starts chat services (stopped after the test): `await start_chat(models=..., **settings)`."""
    started: list[tuple[bootstrap.ChatService, RunningServer, grpc.aio.Channel]] = []

    async def start(
        models: bootstrap.ModelSource | None = None, **overrides: Any
    ) -> tuple[bootstrap.ChatService, ChatClient]:
        service = await bootstrap.build(
            msgspec.structs.replace(settings, **overrides), verifier=verifier, models=models
        )
        pipeline = build_pipeline(
            domain=bootstrap.DOMAIN,
            verifier=service.verifier,
            public_methods=PUBLIC_METHODS,
            registry=service.registry,
        )
        running = await start_server(
            host="127.0.0.1", port=0, bindings=[service.binding], interceptors=[pipeline]
        )
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        started.append((service, running, channel))
        return service, ChatClient(pb_grpc.ChatServiceStub(channel), issuer)

    yield start
    for service, running, channel in reversed(started):
        await channel.close(grace=None)
        await running.stop(grace_seconds=0)
        await service.close()


@pytest.fixture
async def chat_service(start_chat: StartChat) -> tuple[bootstrap.ChatService, ChatClient]:
    return await start_chat()


@pytest.fixture
def client(chat_service: tuple[bootstrap.ChatService, ChatClient]) -> ChatClient:
    return chat_service[1]


@pytest.fixture
def stub(client: ChatClient) -> ChatServiceAsyncStub:
    return client.stub


@pytest.fixture
async def engine(chat_database_url: str) -> AsyncIterator[AsyncEngine]:
    """Direct access for what no RPC shows: soft-deleted rows, query plans."""
    engine = create_async_engine(chat_database_url)
    yield engine
    await engine.dispose()
