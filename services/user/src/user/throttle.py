"""Failed sign-in counting per email in Redis (a fixed one-minute window)."""

from __future__ import annotations

import hashlib
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


class LoginThrottle:
    def __init__(self, redis: Redis, *, limit: int, window_seconds: int) -> None:
        self._redis = redis
        self._limit = limit
        self._window = window_seconds

    @staticmethod
    def _key(email: str) -> str:
        # Hashed: Redis keys end up in monitoring tools, emails are personal data.
        return "login:failures:" + hashlib.sha256(email.encode()).hexdigest()

    async def is_blocked(self, email: str) -> bool:
        try:
            count = await self._redis.get(self._key(email))
        except RedisError:
            logger.warning("login throttle unavailable; not limiting")
            return False
        return count is not None and int(count) >= self._limit

    async def record_failure(self, email: str) -> None:
        key = self._key(email)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, self._window, nx=True)
                await pipe.execute()
        except RedisError:
            logger.warning("login throttle unavailable; failure not counted")
