"""Readiness follows the database; liveness does not; SIGTERM drains and finishes calls.

The database "goes away" behind a TCP relay this test owns (the shared PostgreSQL is never
touched): closing the relay is, to the service, exactly a database that stopped answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.ports import free_port
from devstack.pytest_plugin import MakeDatabase
from medstation_platform.auth.keys import CachedJwks
from medstation_platform.auth.tokens import TokenVerifier
from medstation_platform.db import build_engine
from medstation_platform.readiness import Dependency, ReadinessProbe, database_dependency
from medstation_platform.rpc.runtime import run_service
from medstation_platform.rpc.server import ServiceBinding, start_server
from medstation_platform.settings import ServiceSettings

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE = "test.Slow"
SLOW_METHOD = f"/{SERVICE}/Wait"
_POLL = 0.05
_CAP = 20.0  # a hard cap on every wait below, never an expectation of speed


class TcpRelay:
    """Forwards a local port to PostgreSQL; `close()` drops the listener and every link."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.port = free_port()
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._links):
            writer.close()
        self._links.clear()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._links.update((writer, upstream_writer))
        await asyncio.gather(
            _pipe(reader, upstream_writer), _pipe(upstream_reader, writer), return_exceptions=True
        )


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    credentials, _, _ = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{port}"))


@pytest.fixture(scope="module")
def database_url(make_database: MakeDatabase) -> str:
    return make_database("platform_readiness")


@pytest.fixture
async def relay(database_url: str) -> AsyncIterator[TcpRelay]:
    parts = urlsplit(database_url)
    relay = TcpRelay(parts.hostname or "127.0.0.1", parts.port or 5432)
    await relay.open()
    yield relay
    await relay.close()


@pytest.fixture
async def relayed_engine(database_url: str, relay: TcpRelay) -> AsyncIterator[AsyncEngine]:
    engine = build_engine(
        _through(database_url, relay.port), pool_size=1, statement_timeout_ms=1000
    )
    yield engine
    await engine.dispose()


async def _until(condition: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(_CAP):
        while not await condition():  # noqa: ASYNC110  # polling another process's answer
            await asyncio.sleep(_POLL)


async def test_the_probe_reports_only_changes() -> None:
    reports: list[bool] = []
    up = True

    async def check() -> None:
        if not up:
            raise ConnectionError("down")

    async def report(ready: bool) -> None:
        reports.append(ready)

    probe = ReadinessProbe([Dependency("db", check)], report)
    await probe.check_once()
    await probe.check_once()
    up = False
    await probe.check_once()
    await probe.check_once()
    up = True
    await probe.check_once()

    assert reports == [True, False, True]


async def test_a_dependency_that_never_answers_is_not_ready() -> None:
    async def hang() -> None:
        await asyncio.Event().wait()

    reports: list[bool] = []

    async def report(ready: bool) -> None:
        reports.append(ready)

    probe = ReadinessProbe([Dependency("db", hang)], report, timeout=0.2)

    assert await probe.check_once() is False
    assert reports == [False]


async def test_database_readiness_flips_when_the_database_goes_and_comes_back(
    relayed_engine: AsyncEngine, relay: TcpRelay
) -> None:
    probe = ReadinessProbe([database_dependency(relayed_engine)], _ignore, timeout=2)
    assert await probe.check_once() is True

    await relay.close()
    assert await probe.check_once() is False

    await relay.open()
    await _until(probe.check_once)  # the pool reconnects by itself
    assert probe.ready is True


async def _ignore(ready: bool) -> None:
    return None


# ---- a whole service process's health, as run_service runs it ----


async def _slow(request: bytes, context: object) -> bytes:
    await asyncio.sleep(2.0)
    return b"done"


def _register(server: grpc.aio.Server) -> None:
    handler = grpc.unary_unary_rpc_method_handler(_slow)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"Wait": handler}),)
    )


async def _no_keys() -> bytes:
    return b'{"keys": []}'


async def _status(channel: grpc.aio.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
    status: int = response.status
    return status


def _is(channel: grpc.aio.Channel, service: str, status: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        try:
            return await _status(channel, service) == status
        except grpc.aio.AioRpcError:
            return False

    return check


async def test_a_service_is_live_without_its_database_and_ready_only_with_it(
    database_url: str, relay: TcpRelay
) -> None:
    """run_service's default readiness: the service's own database (settings.database_url)."""
    port = free_port()
    settings = ServiceSettings(
        grpc_port=port,
        database_url=_through(database_url, relay.port),
        shutdown_drain_seconds=0.5,
        shutdown_grace_seconds=5,
    )
    stopped = asyncio.Event()

    async def on_stopped() -> None:
        stopped.set()

    serving = asyncio.create_task(
        run_service(
            settings,
            domain="medstation.test",
            bindings=[ServiceBinding(SERVICE, _register)],
            verifier=TokenVerifier(CachedJwks(_no_keys), issuer="i", audience="a"),
            public_methods={SLOW_METHOD},
            on_stopped=on_stopped,
        )
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await _until(_is(channel, SERVICE, SERVING))

            await relay.close()
            await _until(_is(channel, SERVICE, NOT_SERVING))
            assert await _status(channel, "") == SERVING  # liveness: the process is fine

            await relay.open()
            await _until(_is(channel, SERVICE, SERVING))

            # SIGTERM: NOT_SERVING at once, the call in flight still answered, then exit.
            in_flight = asyncio.ensure_future(
                channel.unary_unary(SLOW_METHOD, None, None)(b"", timeout=10)
            )
            await asyncio.sleep(0.1)  # let the call reach the handler before the signal
            os.kill(os.getpid(), signal.SIGTERM)
            await _until(_is(channel, "", NOT_SERVING))
            assert await _status(channel, SERVICE) == NOT_SERVING
            assert not in_flight.done()  # still being served while draining
            assert await in_flight == b"done"
            async with asyncio.timeout(_CAP):
                await serving
        assert stopped.is_set()
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving


async def test_readiness_cannot_undo_a_drain() -> None:
    running = await start_server(
        host="127.0.0.1", port=0, bindings=[ServiceBinding(SERVICE, _register)],
        interceptors=[], ready=False,
    )  # fmt: skip
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        assert await _status(channel, SERVICE) == NOT_SERVING
        assert await _status(channel, "") == SERVING
        await running.set_ready(True)
        assert await _status(channel, SERVICE) == SERVING

        stopping = asyncio.ensure_future(running.stop(grace_seconds=1, drain_seconds=0.3))
        await asyncio.sleep(0.05)
        await running.set_ready(True)  # the database came back mid-drain
        assert await _status(channel, SERVICE) == NOT_SERVING
        await stopping
