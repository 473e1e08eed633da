"""Revoked sessions and users, shared by every service through Redis.

Access tokens are short-lived and self-contained; revocation closes the gap until they
expire. Keys expire with the longest access-token lifetime, so the set stays small.
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_SESSION_KEY = "auth:revoked:session:{}"
_USER_KEY = "auth:revoked-before:user:{}"


class RedisRevocations:
    def __init__(self, redis: Redis, *, retention_seconds: int) -> None:
        self._redis = redis
        self._retention = retention_seconds

    async def revoke_session(self, session_id: str) -> None:
        await self._set(_SESSION_KEY.format(session_id), "1")

    async def revoke_user_tokens(self, user_id: str) -> None:
        """Every token of this user issued up to now stops working."""
        # +1: a token issued within this same second must not survive.
        await self._set(_USER_KEY.format(user_id), str(int(time.time()) + 1))

    async def _set(self, key: str, value: str) -> None:
        try:
            await self._redis.set(key, value, ex=self._retention)
        except RedisError:
            # The database change already committed and stays authoritative for the
            # service that owns the account; other services catch up at token expiry.
            logger.error("could not publish a token revocation", extra={"key": key})

    async def is_revoked(self, *, user_id: str, session_id: str, issued_at: int) -> bool:
        try:
            session, cutoff = await self._redis.mget(
                [_SESSION_KEY.format(session_id), _USER_KEY.format(user_id)]
            )
        except RedisError:
            # Availability over a short revocation gap: tokens expire within minutes,
            # and the user service re-checks account state in its own database.
            logger.warning("revocation list unreachable; accepting token on signature alone")
            return False
        return session is not None or (cutoff is not None and issued_at < int(cutoff))
