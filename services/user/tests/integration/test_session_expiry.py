"""Sessions end after 30 minutes without a refresh and 12 hours after sign-in, in the real
service over PostgreSQL, and the migration brings sessions issued before it under the rules."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import grpc
import pytest
import sqlalchemy
from alembic import command

from devstack.pytest_plugin import MakeDatabase
from devstack.rpc_failures import failure
from medstation.user.v1 import user_service_pb2 as pb
from medstation.user.v1 import user_service_pb2_grpc as pb_grpc
from medstation_platform.migrations import alembic_config
from medstation_platform.rpc.runtime import build_pipeline
from medstation_platform.rpc.server import start_server
from services.user.tests.integration.user_client import PASSWORD, new_email
from services.user.tests.unit.fakes import FixedClock
from user import bootstrap
from user.__main__ import MIGRATIONS
from user.grpc_api import PUBLIC_METHODS
from user.settings import UserSettings

if TYPE_CHECKING:
    from medstation.user.v1.user_service_pb2_grpc import UserServiceAsyncStub

IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=12)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC))


@pytest.fixture
async def clocked_stub(
    settings: UserSettings, clock: FixedClock
) -> AsyncIterator[UserServiceAsyncStub]:
    """The service with the default session lengths and a clock the test moves."""
    assert (settings.refresh_token_idle_seconds, settings.refresh_token_absolute_seconds) == (
        IDLE.total_seconds(),
        ABSOLUTE.total_seconds(),
    )
    service = await bootstrap.build(settings, clock=clock)
    pipeline = build_pipeline(
        domain=bootstrap.DOMAIN, verifier=service.verifier, public_methods=PUBLIC_METHODS
    )
    server = await start_server(
        host="127.0.0.1", port=0, bindings=[service.binding], interceptors=[pipeline]
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield pb_grpc.UserServiceStub(channel)
    finally:
        await server.stop(grace_seconds=0)
        await service.close()


async def _sign_in(stub: UserServiceAsyncStub) -> str:
    """A new account's refresh token (its access token is never used: the service would
    check it against the wall clock, which the test's clock leaves behind)."""
    email = new_email()
    await stub.Register(pb.RegisterRequest(email=email, password=PASSWORD, display_name="Ada"))
    tokens = await stub.Login(pb.LoginRequest(email=email, password=PASSWORD))
    return tokens.refresh_token


async def _refresh(stub: UserServiceAsyncStub, refresh_token: str) -> str:
    renewed = await stub.Refresh(pb.RefreshRequest(refresh_token=refresh_token))
    return renewed.refresh_token


async def _refused(stub: UserServiceAsyncStub, refresh_token: str) -> None:
    failed = await failure(_refresh(stub, refresh_token))
    assert (failed.code, failed.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "REFRESH_TOKEN_INVALID",
    )


async def test_a_refresh_token_unused_for_30_minutes_is_refused(
    clocked_stub: UserServiceAsyncStub, clock: FixedClock
) -> None:
    token = await _sign_in(clocked_stub)
    clock.advance(IDLE - timedelta(minutes=1))
    token = await _refresh(clocked_stub, token)

    clock.advance(IDLE)

    await _refused(clocked_stub, token)


async def test_a_session_kept_busy_still_ends_12_hours_after_sign_in(
    clocked_stub: UserServiceAsyncStub, clock: FixedClock
) -> None:
    signed_in_at = clock()
    token = await _sign_in(clocked_stub)
    step = timedelta(minutes=25)
    while clock() + step < signed_in_at + ABSOLUTE:
        clock.advance(step)
        token = await _refresh(clocked_stub, token)

    clock.now = signed_in_at + ABSOLUTE

    await _refused(clocked_stub, token)


def _token_row(family_id: str, created_at: datetime, user_id: str, label: str) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "family_id": family_id,
        "user_id": user_id,
        "token_hash": hashlib.sha256(label.encode()).digest(),
        "created_at": created_at,
        "expires_at": created_at + timedelta(days=30),  # the lifetime before 0002
    }


def test_the_migration_puts_existing_sessions_under_the_new_limits(
    make_database: MakeDatabase,
) -> None:
    url = make_database("user_session_migration")
    config = alembic_config(MIGRATIONS, url)
    command.upgrade(config, "0001")
    now = datetime.now(UTC).replace(microsecond=0)
    user_id, family_id = str(uuid.uuid4()), str(uuid.uuid4())
    first = _token_row(family_id, now - timedelta(hours=2), user_id, "first")
    latest = _token_row(family_id, now - timedelta(minutes=5), user_id, "latest")
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(
                sqlalchemy.text(
                    "INSERT INTO users (id, email, display_name, role, password_hash,"
                    " created_at, updated_at) VALUES (:id, 'old@example.org', 'Old',"
                    " 'clinician', 'x', :now, :now)"
                ),
                {"id": user_id, "now": now},
            )
            connection.execute(
                sqlalchemy.text(
                    "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash,"
                    " created_at, expires_at) VALUES (:id, :family_id, :user_id,"
                    " :token_hash, :created_at, :expires_at)"
                ),
                [first, latest],
            )

        command.upgrade(config, "head")

        with engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.text("SELECT id, expires_at, session_expires_at FROM refresh_tokens")
            ).all()
    finally:
        engine.dispose()
    ends = {str(row.id): (row.expires_at, row.session_expires_at) for row in rows}
    session_end = now - timedelta(hours=2) + ABSOLUTE
    assert ends[str(latest["id"])] == (now - timedelta(minutes=5) + IDLE, session_end)
    assert ends[str(first["id"])] == (now - timedelta(hours=2) + IDLE, session_end)
