"""Revoked sessions, shared by every service through Redis.

Access tokens are short-lived and self-contained; revocation closes the gap until they
expire. A token names its session (`sid`), so revoking sessions — not points in time —
needs no clock agreement and never catches a token issued a moment later. Entries
outlive the longest access token (plus verification leeway), so the set stays small.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_SESSION_KEY = "auth:revoked:session:{}"


class RedisRevocations:
    def __init__(self, redis: Redis, *, retention_seconds: int) -> None:
        self._redis = redis
        self._retention = retention_seconds

    async def revoke_sessions(self, session_ids: Collection[str]) -> None:
        if not session_ids:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for session_id in session_ids:
                    pipe.set(_SESSION_KEY.format(session_id), "1", ex=self._retention)
                await pipe.execute()
        except RedisError:
            # The database change already committed and stays authoritative for the
            # service that owns the account; other services catch up at token expiry.
            logger.error("could not publish session revocations", extra={"count": len(session_ids)})

    async def is_revoked(self, session_id: str) -> bool:
        try:
            return bool(await self._redis.exists(_SESSION_KEY.format(session_id)))
        except RedisError:
            # Availability over a short revocation gap: tokens expire within minutes,
            # and the user service re-checks account state in its own database.
            logger.warning("revocation list unreachable; accepting token on signature alone")
            return False
