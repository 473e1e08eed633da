"""A process traced the way services are, for test_telemetry.py (run as a script).

`python telemetry_probe.py <marker> <database url> <redis url> <http url>` configures
logging and tracing like `run_command_line`, serves one gRPC method whose handler does
what a use case does (SQL, Redis, an HTTP call), all carrying `marker` as patient data,
calls it and the health service, then flushes its spans. It prints its resource
attributes as its last line of stdout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from medstation_platform.auth.keys import CachedJwks
from medstation_platform.auth.tokens import TokenVerifier
from medstation_platform.db import build_engine
from medstation_platform.logs import configure_logging
from medstation_platform.redis_connection import build_redis
from medstation_platform.rpc.runtime import build_pipeline
from medstation_platform.rpc.server import ServiceBinding, start_server
from medstation_platform.telemetry import (
    configure_tracing,
    instrument_engine,
    instrument_http_client,
)

logger = logging.getLogger("probe")


async def _no_keys() -> bytes:
    raise AssertionError("the probe's only method is public: no token is ever verified")


_NO_TOKENS = TokenVerifier(CachedJwks(_no_keys), issuer="probe", audience="probe")


class Probe:
    def __init__(self, marker: str, database_url: str, redis_url: str, http_url: str) -> None:
        self.marker = marker
        self.engine = build_engine(database_url, pool_size=2, statement_timeout_ms=5_000)
        instrument_engine(self.engine)
        # A second engine in one process is traced too (the instrumentor is a singleton).
        self.second_engine = build_engine(database_url, pool_size=1, statement_timeout_ms=5_000)
        instrument_engine(self.second_engine)
        self.redis = build_redis(redis_url, timeout_seconds=2)
        self.http_url = http_url

    async def handle(self, request: bytes, context: object) -> bytes:
        await self._sql()
        key = f"probe:{uuid.uuid4().hex}"
        await self.redis.set(key, self.marker, ex=60)
        await self.redis.get(key)
        async with httpx.AsyncClient() as client:
            instrument_http_client(client)
            await client.post(
                self.http_url,
                json={"messages": [{"role": "user", "content": self.marker}]},
                headers={"authorization": f"Bearer {self.marker}"},
            )
        return request

    async def _sql(self) -> None:
        async with self.second_engine.connect() as connection:
            await connection.execute(text("SELECT 2 AS from_the_second_engine"))
        async with self.engine.connect() as connection:
            await connection.execute(text("CREATE TEMPORARY TABLE probe_records (mrn text UNIQUE)"))
            insert = text("INSERT INTO probe_records (mrn) VALUES (:mrn)")
            await connection.execute(insert, {"mrn": self.marker})
            try:
                await connection.execute(insert, {"mrn": self.marker})
            except sa_exc.IntegrityError:
                # The message and the traceback both quote the row: the log must not.
                logger.exception("duplicate record", extra={"grpc_code": "ALREADY_EXISTS"})
            await connection.rollback()

    def register(self, server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(self.handle)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("probe.v1.Probe", {"Echo": handler}),)
        )


async def main(marker: str, database_url: str, redis_url: str, http_url: str) -> None:
    probe = Probe(marker, database_url, redis_url, http_url)
    # The pipeline services run, which opens each call's server span; Echo needs no token.
    pipeline = build_pipeline(
        domain="probe", verifier=_NO_TOKENS, public_methods=["/probe.v1.Probe/Echo"]
    )
    running = await start_server(
        host="127.0.0.1",
        port=0,
        bindings=[ServiceBinding("probe.v1.Probe", probe.register)],
        interceptors=[pipeline],
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        echo = channel.unary_unary("/probe.v1.Probe/Echo", None, None)
        await echo(marker.encode(), timeout=10)
        health = health_pb2_grpc.HealthStub(channel)
        await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    await running.stop(0)
    await probe.redis.aclose()
    await probe.engine.dispose()
    await probe.second_engine.dispose()


if __name__ == "__main__":
    configure_logging("probe", "INFO")
    provider = configure_tracing("probe")
    asyncio.run(main(*sys.argv[1:5]))
    provider.shutdown()  # exports every span before the process exits
    print(json.dumps(dict(provider.resource.attributes)), flush=True)
