from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from devstack.ports import free_port
from medstation_platform.cache import GENERATION_TTL_SECONDS, CacheAside
from medstation_platform.redis_connection import build_redis


class Source:
    """The source of truth behind a cache: counts loads, can be made slow."""

    def __init__(self, value: str | None) -> None:
        self.value = value
        self.loads = 0
        self.loading = asyncio.Event()
        self.release: asyncio.Event | None = None

    async def load(self) -> str | None:
        self.loads += 1
        value = self.value  # read "from the database" before the pause, like a real query
        self.loading.set()
        if self.release is not None:
            await self.release.wait()
        return value


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = build_redis(redis_url, timeout_seconds=2)
    yield client
    await client.aclose()


@pytest.fixture
async def namespace(redis: Redis) -> AsyncIterator[str]:
    namespace = f"test-{secrets.token_hex(6)}"
    yield namespace
    keys = [key async for key in redis.scan_iter(match=f"cache:{namespace}:*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
async def down_redis() -> AsyncIterator[Redis]:
    # Nothing listens there: every call fails at once, as in an outage.
    client = build_redis(f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.2)
    yield client
    await client.aclose()


async def test_miss_loads_and_stores_then_hit_does_not_load(redis: Redis, namespace: str) -> None:
    cache = CacheAside(redis, namespace=namespace, ttl_seconds=60)
    source = Source("v1")

    assert await cache.read("k", source.load) == "v1"
    assert await cache.read("k", source.load) == "v1"

    assert source.loads == 1
    assert await redis.get(f"cache:{namespace}:k") == "v1"
    assert 0 < await redis.ttl(f"cache:{namespace}:k") <= 60


async def test_none_from_load_is_not_cached(redis: Redis, namespace: str) -> None:
    cache = CacheAside(redis, namespace=namespace, ttl_seconds=60)
    source = Source(None)

    assert await cache.read("k", source.load) is None
    assert await cache.read("k", source.load) is None

    assert source.loads == 2


async def test_invalidate_makes_the_next_read_reload(redis: Redis, namespace: str) -> None:
    cache = CacheAside(redis, namespace=namespace, ttl_seconds=60)
    source = Source("v1")
    await cache.read("k", source.load)

    source.value = "v2"
    await cache.invalidate("k")

    assert await cache.read("k", source.load) == "v2"
    assert await cache.read("k", source.load) == "v2"
    assert source.loads == 2
    assert 0 < await redis.ttl(f"cache:{namespace}:gen:k") <= GENERATION_TTL_SECONDS


async def test_invalidation_during_a_slow_load_keeps_the_stale_value_out(
    redis: Redis, namespace: str
) -> None:
    cache = CacheAside(redis, namespace=namespace, ttl_seconds=60)
    source = Source("stale")
    source.release = asyncio.Event()
    reader = asyncio.create_task(cache.read("k", source.load))
    await asyncio.wait_for(source.loading.wait(), timeout=5)

    # The writer commits and invalidates while the reader still holds the old row.
    source.value = "fresh"
    await cache.invalidate("k")
    source.release.set()

    assert await asyncio.wait_for(reader, timeout=5) == "stale"
    assert await redis.get(f"cache:{namespace}:k") is None
    source.release = None
    assert await cache.read("k", source.load) == "fresh"
    assert source.loads == 2


async def test_keys_are_independent(redis: Redis, namespace: str) -> None:
    cache = CacheAside(redis, namespace=namespace, ttl_seconds=60)
    await cache.read("a", Source("A").load)
    await cache.read("b", Source("B").load)

    await cache.invalidate("a")

    assert await redis.get(f"cache:{namespace}:a") is None
    assert await redis.get(f"cache:{namespace}:b") == "B"


async def test_clients_without_decoded_responses_read_strings(
    redis_url: str, namespace: str
) -> None:
    client = Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        cache = CacheAside(client, namespace=namespace, ttl_seconds=60)
        source = Source("v1")
        await cache.read("k", source.load)
        await cache.invalidate("k")
        await cache.read("k", source.load)

        assert await cache.read("k", source.load) == "v1"
        assert source.loads == 2
    finally:
        await client.aclose()


async def test_reads_go_to_the_source_while_redis_is_down(
    down_redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    cache = CacheAside(down_redis, namespace="down", ttl_seconds=60)
    source = Source("v1")

    with caplog.at_level(logging.WARNING, logger="medstation_platform.cache"):
        results = [await cache.read("k", source.load) for _ in range(5)]

    assert results == ["v1"] * 5
    assert source.loads == 5
    # One warning for the outage, not one per read.
    assert [record.levelname for record in caplog.records] == ["WARNING"]


async def test_invalidate_does_not_raise_while_redis_is_down(
    down_redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    cache = CacheAside(down_redis, namespace="down", ttl_seconds=60)

    with caplog.at_level(logging.ERROR, logger="medstation_platform.cache"):
        await cache.invalidate("k")

    assert [record.levelname for record in caplog.records] == ["ERROR"]


async def test_hits_misses_and_bypasses_are_counted_per_cache(
    redis: Redis, down_redis: Redis, namespace: str
) -> None:
    registry = CollectorRegistry()
    cache = CacheAside(redis, namespace=namespace, ttl_seconds=60, registry=registry)
    # A second cache on the same registry shares the collectors instead of clashing.
    broken = CacheAside(down_redis, namespace="down", ttl_seconds=60, registry=registry)

    await cache.read("k", Source("v").load)
    await cache.read("k", Source("v").load)
    await cache.read("k", Source("v").load)
    await broken.read("k", Source("v").load)

    def count(cache_name: str, result: str) -> float | None:
        labels = {"cache": cache_name, "result": result}
        return registry.get_sample_value("cache_requests_total", labels)

    assert count(namespace, "miss") == 1
    assert count(namespace, "hit") == 2
    assert count("down", "bypass") == 1
