"""Revoked sessions, shared by every service through Redis.

Access tokens are short-lived and self-contained; revocation closes the gap until they
expire. A token names its session (`sid`), so revoking sessions — not points in time —
needs no clock agreement and never catches a token issued a moment later. Entries
outlive the longest access token (plus verification leeway), so the set stays small.

Every call checks revocation, so the check must not cost a round trip: each process
keeps the set in memory (`follow`), loaded from Redis and kept current by a pub/sub
channel on which every revocation is announced as it is written. Subscribing comes
before loading, so a revocation made while the set loads is not missed. While the
subscription is not live (starting, or Redis gone) each check asks Redis, as before.
A process sees its own revocations at once; others within one pub/sub delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Collection

from opentelemetry.instrumentation.utils import suppress_instrumentation
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_SESSION_KEY = "auth:revoked:session:{}"
_SESSION_PATTERN = "auth:revoked:session:*"
_SESSION_PREFIX = "auth:revoked:session:"
CHANNEL = "auth:revocations"
# A silent connection (a partition, not a reset) is noticed within this long.
_PING_INTERVAL_SECONDS = 5.0
_RECONNECT_MAX_SECONDS = 5.0
_SCAN_BATCH = 1000


class RedisRevocations:
    def __init__(self, redis: Redis, *, retention_seconds: int) -> None:
        self._redis = redis
        self._retention = retention_seconds
        # Session id -> when (time.monotonic) its entry expires; trusted only while live.
        self._revoked: dict[str, float] = {}
        self._live = False

    @property
    def live(self) -> bool:
        """Whether checks are answered from memory (the subscription is up to date)."""
        return self._live

    async def revoke_sessions(self, session_ids: Collection[str]) -> None:
        if not session_ids:
            return
        self._remember(session_ids)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for session_id in session_ids:
                    pipe.set(_SESSION_KEY.format(session_id), "1", ex=self._retention)
                pipe.publish(CHANNEL, " ".join(session_ids))
                await pipe.execute()
        except RedisError:
            # The database change already committed and stays authoritative for the
            # service that owns the account; other services catch up at token expiry.
            logger.error("could not publish session revocations", extra={"count": len(session_ids)})

    async def is_revoked(self, session_id: str) -> bool:
        if self._live:
            expires = self._revoked.get(session_id)
            return expires is not None and expires > time.monotonic()
        try:
            return bool(await self._redis.exists(_SESSION_KEY.format(session_id)))
        except RedisError:
            # Availability over a short revocation gap: tokens expire within minutes,
            # and the user service re-checks account state in its own database.
            logger.warning("revocation list unreachable; accepting token on signature alone")
            return False

    async def follow(self, stopping: asyncio.Event) -> None:
        """Keep the set in memory until `stopping` is set; reconnects on any failure."""
        failures = 0
        while not stopping.is_set():
            try:
                # Its loads and pings would each be a one-span trace of their own.
                with suppress_instrumentation():
                    await self._follow_once(stopping)
                failures = 0
            except (RedisError, OSError) as error:  # TimeoutError is an OSError
                failures += 1
                if failures == 1:
                    logger.warning("revocation feed lost, asking Redis on every call: %s", error)
            finally:
                self._live = False
            pause = min(_RECONNECT_MAX_SECONDS, 0.1 * 2**failures)
            with contextlib.suppress(TimeoutError):
                # Jitter keeps replicas from reconnecting in lockstep; not a security use.
                await asyncio.wait_for(stopping.wait(), random.uniform(pause / 2, pause))  # noqa: S311

    async def _follow_once(self, stopping: asyncio.Event) -> None:
        async with self._redis.pubsub() as pubsub:
            await pubsub.subscribe(CHANNEL)
            await _confirmed(pubsub)
            self._revoked = await self._load()
            self._live = True
            logger.info("revocation feed live", extra={"sessions": len(self._revoked)})
            heard = pinged = time.monotonic()
            while not stopping.is_set():
                message = await pubsub.get_message(timeout=1.0)
                now = time.monotonic()
                if message is not None:
                    heard = now
                    if message["type"] == "message":
                        self._remember(_text(message["data"]).split())
                    elif message["type"] == "subscribe":
                        # redis-py reconnected and subscribed again by itself: what was
                        # announced in between never reached us, but Redis has it.
                        self._revoked.update(await self._load())
                if now - heard > 2 * _PING_INTERVAL_SECONDS:
                    raise TimeoutError("the revocation feed went silent")
                if now - pinged > _PING_INTERVAL_SECONDS:
                    await pubsub.ping()  # its PONG counts as hearing from Redis
                    pinged = now
                    self._forget_expired()

    async def _load(self) -> dict[str, float]:
        revoked: dict[str, float] = {}
        async for key in self._redis.scan_iter(match=_SESSION_PATTERN, count=_SCAN_BATCH):
            revoked[_text(key).removeprefix(_SESSION_PREFIX)] = time.monotonic() + self._retention
        return revoked

    def _remember(self, session_ids: Collection[str]) -> None:
        expires = time.monotonic() + self._retention
        for session_id in session_ids:
            self._revoked[session_id] = expires

    def _forget_expired(self) -> None:
        now = time.monotonic()
        self._revoked = {sid: expires for sid, expires in self._revoked.items() if expires > now}


async def _confirmed(pubsub: PubSub) -> None:
    """Waits for the subscription's confirmation: only then are announcements delivered."""
    deadline = time.monotonic() + _PING_INTERVAL_SECONDS
    while time.monotonic() < deadline:
        message = await pubsub.get_message(timeout=deadline - time.monotonic())
        if message is not None and message["type"] == "subscribe":
            return
    raise TimeoutError("no subscription confirmation from Redis")


def _text(value: str | bytes) -> str:
    """A reply as text, from clients built with or without `decode_responses`."""
    return value.decode() if isinstance(value, bytes) else value
