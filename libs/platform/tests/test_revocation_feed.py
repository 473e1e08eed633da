"""Revoked sessions kept in memory from Redis (RedisRevocations.follow), against real
redis-servers of the tests' own: the channel name is fixed, so a shared server would
carry these announcements to every process following it (the running stack's too)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from redis.asyncio import Redis

from devstack.chaos.servers import OwnRedis
from medstation_platform.auth.keys import CachedJwks
from medstation_platform.auth.revocation import RedisRevocations
from medstation_platform.auth.tokens import TokenVerifier
from medstation_platform.redis_connection import build_redis

RETENTION_SECONDS = 600


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRedis]:
    with OwnRedis(tmp_path_factory.mktemp("revocations")) as server:
        yield server


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[OwnRedis]:
    """A server this test alone uses, so it may stop it."""
    with OwnRedis(tmp_path) as server:
        yield server


@pytest.fixture
async def clients(shared_server: OwnRedis) -> AsyncIterator[Callable[[], Redis]]:
    async with _client_factory(shared_server) as make:
        yield make


@asynccontextmanager
async def _client_factory(server: OwnRedis) -> AsyncIterator[Callable[[], Redis]]:
    """Makes Redis clients as services build them (one per process), closed at the end."""
    made: list[Redis] = []

    def make() -> Redis:
        client = build_redis(server.url, timeout_seconds=1)
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            await client.aclose()


@asynccontextmanager
async def _following(revocations: RedisRevocations) -> AsyncIterator[asyncio.Task[None]]:
    stopping = asyncio.Event()
    task = asyncio.create_task(revocations.follow(stopping))
    try:
        yield task
    finally:
        stopping.set()
        await asyncio.wait_for(task, timeout=10)


async def _eventually(condition: Callable[[], Awaitable[bool]]) -> None:
    # Reconnecting after an outage backs off for up to a few seconds.
    async with asyncio.timeout(20):
        while not await condition():  # noqa: ASYNC110  # the state is another task's
            await asyncio.sleep(0.01)


def _live(revocations: RedisRevocations, live: bool = True) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return revocations.live is live

    return check


def _revoked(revocations: RedisRevocations, session: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await revocations.is_revoked(session)

    return check


def _session() -> str:
    return f"session-{secrets.token_hex(6)}"


def _key(session: str) -> str:
    return f"auth:revoked:session:{session}"


async def test_revocations_already_in_redis_are_loaded_and_answered_from_memory(
    clients: Callable[[], Redis],
) -> None:
    redis = clients()
    earlier = _session()
    await redis.set(_key(earlier), "1", ex=RETENTION_SECONDS)
    revocations = RedisRevocations(clients(), retention_seconds=RETENTION_SECONDS)
    assert not revocations.live

    async with _following(revocations):
        await _eventually(_live(revocations))
        await redis.delete(_key(earlier))  # gone from Redis: memory answers, not Redis

        assert await revocations.is_revoked(earlier)
        assert not await revocations.is_revoked(_session())


async def test_a_revocation_by_another_process_reaches_a_follower(
    clients: Callable[[], Redis],
) -> None:
    follower = RedisRevocations(clients(), retention_seconds=RETENTION_SECONDS)
    other = RedisRevocations(clients(), retention_seconds=RETENTION_SECONDS)
    first, second = _session(), _session()

    async with _following(follower):
        await _eventually(_live(follower))
        await other.revoke_sessions([first, second])

        await _eventually(_revoked(follower, first))
        assert await follower.is_revoked(second)
        assert follower.live


async def test_a_followers_own_revocations_are_known_at_once(
    shared_server: OwnRedis, clients: Callable[[], Redis]
) -> None:
    # Known without the announcement: this process may not publish, so none ever comes.
    user, password = f"silent-{secrets.token_hex(4)}", secrets.token_hex(8)
    await clients().acl_setuser(
        user, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"],
        commands=["+@all", "-publish"],
    )  # fmt: skip
    silent = build_redis(
        f"redis://{user}:{password}@127.0.0.1:{shared_server.port}/0", timeout_seconds=1
    )
    follower = RedisRevocations(silent, retention_seconds=RETENTION_SECONDS)
    session = _session()
    try:
        async with _following(follower):
            await _eventually(_live(follower))
            await follower.revoke_sessions([session])

            assert await follower.is_revoked(session)
    finally:
        await silent.aclose()


async def test_revocations_are_written_to_redis_for_the_retention_period(
    clients: Callable[[], Redis],
) -> None:
    redis = clients()
    session = _session()

    await RedisRevocations(clients(), retention_seconds=RETENTION_SECONDS).revoke_sessions(
        [session]
    )

    assert 0 < await redis.ttl(_key(session)) <= RETENTION_SECONDS


async def test_without_following_every_check_asks_redis(clients: Callable[[], Redis]) -> None:
    redis = clients()
    revocations = RedisRevocations(clients(), retention_seconds=RETENTION_SECONDS)
    session = _session()

    await redis.set(_key(session), "1", ex=RETENTION_SECONDS)
    assert await revocations.is_revoked(session)
    await redis.delete(_key(session))
    assert not await revocations.is_revoked(session)
    assert not revocations.live


async def test_a_dropped_subscription_misses_no_revocation(
    clients: Callable[[], Redis],
) -> None:
    # redis-py reconnects a dropped subscription by itself (a restarted proxy, an idle
    # timeout, CLIENT KILL): what was announced before it subscribed again must not be lost.
    admin = clients()
    follower = RedisRevocations(clients(), retention_seconds=RETENTION_SECONDS)
    other_client = clients()
    other = RedisRevocations(other_client, retention_seconds=RETENTION_SECONDS)
    await other_client.ping()  # connected: its announcement goes out at once
    session = _session()

    async with _following(follower):
        await _eventually(_live(follower))
        assert await admin.client_kill_filter(_type="pubsub") >= 1
        await other.revoke_sessions([session])

        await _eventually(_revoked(follower, session))


async def test_losing_redis_turns_memory_off_and_following_resumes_when_it_is_back(
    own_server: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    async with _client_factory(own_server) as clients:
        follower = RedisRevocations(clients(), retention_seconds=RETENTION_SECONDS)
        other = RedisRevocations(clients(), retention_seconds=RETENTION_SECONDS)
        before = _session()

        async with _following(follower):
            await _eventually(_live(follower))
            await follower.revoke_sessions([before])
            assert await follower.is_revoked(before)

            own_server.stop()
            await _eventually(_live(follower, live=False))
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="medstation_platform.auth.revocation"):
                # Not live: the check asks Redis, which is away, and accepts the token.
                assert not await follower.is_revoked(before)
            assert "revocation list unreachable" in caplog.text

            own_server.start()  # the same port, every key lost (nothing kept on disk)
            await _eventually(_live(follower))
            after = _session()
            await other.revoke_sessions([after])
            await _eventually(_revoked(follower, after))


async def test_a_token_verifier_keeps_its_revocations_current_until_stopped(
    clients: Callable[[], Redis],
) -> None:
    async def no_keys() -> bytes:
        return b'{"keys": []}'

    revocations = RedisRevocations(clients(), retention_seconds=RETENTION_SECONDS)
    verifier = TokenVerifier(CachedJwks(no_keys), issuer="i", audience="a", revocations=revocations)
    stopping = asyncio.Event()
    following = asyncio.create_task(verifier.follow_revocations(stopping))

    await _eventually(_live(revocations))
    stopping.set()
    await asyncio.wait_for(following, timeout=10)

    assert not revocations.live
