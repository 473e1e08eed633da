"""Redis clients with bounded waits: a slow or absent Redis never stalls an RPC."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


def build_redis(url: str, *, timeout_seconds: float) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        health_check_interval=30,
        decode_responses=True,
        # One retry, at once: redis-py's default retries many times with backoff, which
        # would hold an RPC far past its deadline while Redis is down.
        retry=Retry(NoBackoff(), 1),
    )
