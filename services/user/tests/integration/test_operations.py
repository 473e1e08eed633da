"""Running the service: migrations, signing-key persistence, the port, health checks."""

from __future__ import annotations

import grpc
import pytest
import sqlalchemy
from grpc_health.v1 import health_pb2, health_pb2_grpc

from medstation_platform.migrations import upgrade_to_head
from medstation_platform.rpc.server import PortInUse, RunningServer, start_server
from user import bootstrap, use_cases
from user.__main__ import MIGRATIONS
from user.settings import UserSettings


def _schema(database_url: str) -> dict[str, object]:
    engine = sqlalchemy.create_engine(database_url, poolclass=sqlalchemy.NullPool)
    try:
        with engine.connect() as connection:
            inspector = sqlalchemy.inspect(connection)
            version = connection.execute(sqlalchemy.text("SELECT version_num FROM alembic_version"))
            return {
                "version": version.scalars().all(),
                "tables": {
                    table: (
                        [column["name"] for column in inspector.get_columns(table)],
                        sorted(str(index["name"]) for index in inspector.get_indexes(table)),
                    )
                    for table in inspector.get_table_names()
                },
            }
    finally:
        engine.dispose()


def test_running_the_migrations_again_changes_nothing(database_url: str) -> None:
    before = _schema(database_url)

    upgrade_to_head(MIGRATIONS, database_url)

    assert _schema(database_url) == before
    assert before["version"] == ["0002"]


async def test_the_signing_key_survives_a_restart(
    service: bootstrap.UserService, settings: UserSettings
) -> None:
    restarted = await bootstrap.build(settings)
    try:
        assert restarted.identity.minter.kid == service.identity.minter.kid
        assert await use_cases.get_jwks(restarted.identity.unit_of_work) == (
            await use_cases.get_jwks(service.identity.unit_of_work)
        )
    finally:
        await restarted.close()


async def test_a_second_server_on_a_taken_port_fails_clearly(
    server: RunningServer, service: bootstrap.UserService
) -> None:
    with pytest.raises(PortInUse):
        await start_server(
            host="127.0.0.1", port=server.port, bindings=[service.binding], interceptors=[]
        )


@pytest.mark.parametrize("name", ["medstation.user.v1.UserService", ""])
async def test_health_reports_serving(channel: grpc.aio.Channel, name: str) -> None:
    health = health_pb2_grpc.HealthStub(channel)

    response = await health.Check(health_pb2.HealthCheckRequest(service=name))

    assert response.status == health_pb2.HealthCheckResponse.SERVING
