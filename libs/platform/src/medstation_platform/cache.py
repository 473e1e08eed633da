"""Cache-aside over Redis that never keeps a value older than the last invalidation.

Every key has a generation counter beside it. A reader notes the generation before it
loads from the source of truth, and stores what it loaded only if the generation is
still the same (compare and set in one Lua script). A writer commits to the database,
then bumps the generation and deletes the value. So a reader that loaded the old row
just before the writer's commit cannot write it back after the writer's invalidation:
its compare fails. Redis is an optimisation here, never a dependency: when it fails,
reads go to the source and invalidations are logged (the TTL bounds any staleness).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

Loader = Callable[[], Awaitable[str | None]]

# Outlives any value TTL by far, so a generation never vanishes while a reader that saw
# it is still loading; refreshed by every invalidation.
GENERATION_TTL_SECONDS = 86_400
# After a failed Redis call, reads skip Redis this long: during an outage every read
# would otherwise wait for the client's timeouts (and retries) before loading anyway.
_BYPASS_AFTER_FAILURE_SECONDS = 1.0

# KEYS[1] value key, KEYS[2] generation key; ARGV[1] generation the reader saw ('' when
# absent), ARGV[2] value, ARGV[3] TTL in seconds.
_STORE_IF_GENERATION_UNCHANGED = """
local generation = redis.call('GET', KEYS[2]) or ''
if generation ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""


class CacheAside:
    """String values cached under `cache:{namespace}:{key}` for `ttl_seconds`.

    Works with clients built with or without `decode_responses`.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        namespace: str,
        ttl_seconds: int,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self._redis = redis
        self._namespace = namespace
        self._ttl_seconds = ttl_seconds
        self._store_if_unchanged = redis.register_script(_STORE_IF_GENERATION_UNCHANGED)
        self._health = _RedisHealth(namespace)
        self._metrics = None if registry is None else _metrics_for(registry)

    async def read(self, key: str, load: Loader) -> str | None:
        """The cached value, or `await load()` (stored unless None or invalidated meanwhile)."""
        if self._health.recently_failed():
            return await self._bypass(load)
        try:
            cached, generation = await self._lookup(key)
        except RedisError as error:
            self._health.failed(error)
            return await self._bypass(load)
        self._health.succeeded()
        if cached is not None:
            self._count("hit")
            return cached
        self._count("miss")
        value = await load()
        if value is not None:
            await self._store(key, value, generation)
        return value

    async def invalidate(self, key: str) -> None:
        """Drop the value and fence off readers already loading; never raises."""
        try:
            async with self._redis.pipeline(transaction=True) as pipeline:
                pipeline.incr(self._generation_key(key))
                pipeline.expire(self._generation_key(key), GENERATION_TTL_SECONDS)
                pipeline.delete(self._value_key(key))
                await pipeline.execute()
        except RedisError:
            # The database change is committed already: failing the caller would only
            # invite a retry of a write that succeeded. The TTL bounds the staleness.
            logger.exception(
                "cache invalidation failed; the old value may be served until its TTL",
                extra={"cache": self._namespace, "cache_key": key},
            )

    async def _lookup(self, key: str) -> tuple[str | None, str]:
        # One round trip: the value and the generation a miss will be stored under.
        cached, generation = await self._redis.mget(
            [self._value_key(key), self._generation_key(key)]
        )
        return _text_or_none(cached), _text_or_none(generation) or ""

    async def _store(self, key: str, value: str, generation: str) -> None:
        keys = [self._value_key(key), self._generation_key(key)]
        try:
            await self._store_if_unchanged(keys=keys, args=[generation, value, self._ttl_seconds])
        except RedisError as error:
            self._health.failed(error)

    async def _bypass(self, load: Loader) -> str | None:
        self._count("bypass")
        return await load()

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.requests.labels(self._namespace, result).inc()

    def _value_key(self, key: str) -> str:
        return f"cache:{self._namespace}:{key}"

    def _generation_key(self, key: str) -> str:
        return f"cache:{self._namespace}:gen:{key}"


class _RedisHealth:
    """Remembers the last failure, so an outage is logged when it starts and when it ends."""

    def __init__(self, namespace: str) -> None:
        self._namespace = namespace
        self._last_failure: float | None = None

    def recently_failed(self) -> bool:
        last = self._last_failure
        return last is not None and time.monotonic() - last < _BYPASS_AFTER_FAILURE_SECONDS

    def failed(self, error: RedisError) -> None:
        if self._last_failure is None:
            logger.warning(
                "Redis unavailable, reading through to the source until it answers: %s",
                error,
                extra={"cache": self._namespace},
            )
        self._last_failure = time.monotonic()

    def succeeded(self) -> None:
        if self._last_failure is not None:
            logger.info("Redis answers again, caching resumed", extra={"cache": self._namespace})
            self._last_failure = None


@dataclass(frozen=True)
class _CacheMetrics:
    requests: Counter


# One set of collectors per registry: a service builds several caches on one registry,
# and prometheus_client refuses to register a metric name twice.
_metrics_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, _CacheMetrics] = (
    weakref.WeakKeyDictionary()
)


def _metrics_for(registry: CollectorRegistry) -> _CacheMetrics:
    metrics = _metrics_by_registry.get(registry)
    if metrics is None:
        metrics = _CacheMetrics(
            requests=Counter(
                "cache_requests_total",
                "Cache-aside reads by result: hit, miss, or bypass (Redis failing).",
                ["cache", "result"],
                registry=registry,
            )
        )
        _metrics_by_registry[registry] = metrics
    return metrics


def _text_or_none(reply: str | bytes | None) -> str | None:
    return reply.decode() if isinstance(reply, bytes) else reply
