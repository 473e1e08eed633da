"""The real user service in-process on a free port, over a migrated PostgreSQL and Redis."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
import pytest

from devstack.pytest_plugin import MakeDatabase
from medstation.user.v1 import user_service_pb2_grpc as pb_grpc
from medstation_platform.migrations import upgrade_to_head
from medstation_platform.rpc.runtime import build_pipeline
from medstation_platform.rpc.server import RunningServer, start_server
from medstation_platform.secret import Secret
from services.user.tests.integration.user_client import UserClient
from user import bootstrap
from user.__main__ import MIGRATIONS
from user.grpc_api import PUBLIC_METHODS
from user.settings import UserSettings

if TYPE_CHECKING:
    from medstation.user.v1.user_service_pb2_grpc import UserServiceAsyncStub


@pytest.fixture(scope="session")
def database_url(make_database: MakeDatabase) -> str:
    """One fresh database for the session, migrated to head; dropped when it ends."""
    url = make_database("user_service_tests")
    upgrade_to_head(MIGRATIONS, url)
    return url


@pytest.fixture
def settings(database_url: str, redis_url: str) -> UserSettings:
    return UserSettings(
        grpc_port=0,
        database_url=database_url,
        redis_url=redis_url,
        admin_email=f"admin-{secrets.token_hex(6)}@medstation.test",
        admin_password=Secret(secrets.token_urlsafe(18)),
    )


@pytest.fixture
async def service(settings: UserSettings) -> AsyncIterator[bootstrap.UserService]:
    service = await bootstrap.build(settings)
    yield service
    await service.close()


@pytest.fixture
async def server(service: bootstrap.UserService) -> AsyncIterator[RunningServer]:
    pipeline = build_pipeline(
        domain=bootstrap.DOMAIN, verifier=service.verifier, public_methods=PUBLIC_METHODS
    )
    running = await start_server(
        host="127.0.0.1", port=0, bindings=[service.binding], interceptors=[pipeline]
    )
    yield running
    await running.stop(grace_seconds=0)


@pytest.fixture
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> UserServiceAsyncStub:
    return pb_grpc.UserServiceStub(channel)


@pytest.fixture
def client(stub: UserServiceAsyncStub, settings: UserSettings) -> UserClient:
    return UserClient(stub, settings.admin_email, settings.admin_password.get_secret_value())
