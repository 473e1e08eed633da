"""How many messages a user may send: a fixed-window counter per user in Redis.

Redis is a guard here, not a dependency: when it cannot answer, messages are allowed
(and the failure logged), so an outage of Redis never takes chat down with it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chat.domain import RateLimited

logger = logging.getLogger(__name__)


class MessageRateLimiter:
    def __init__(
        self,
        redis: Redis,
        *,
        limit: int,
        window_seconds: int,
        clock: Callable[[], float] = time.time,
        namespace: str = "chat:rate",
    ) -> None:
        self._redis = redis
        self._limit = limit
        self._window = window_seconds
        self._clock = clock
        self._namespace = namespace

    async def acquire(self, user_id: str) -> None:
        now = self._clock()
        window = int(now // self._window)
        key = f"{self._namespace}:{user_id}:{window}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                # Kept past its window's end so that clock skew between replicas is harmless.
                pipe.expire(key, 2 * self._window, nx=True)
                count, _ = await pipe.execute()
        except RedisError:
            logger.warning("message rate limit unavailable; not limiting")
            return
        if int(count) > self._limit:
            retry_after = max(1, math.ceil((window + 1) * self._window - now))
            raise RateLimited(self._limit, self._window, retry_after)
