"""Redis clients with bounded waits: a slow or absent Redis never stalls an RPC."""

from __future__ import annotations

from redis.asyncio import Redis


def build_redis(url: str, *, timeout_seconds: float) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        health_check_interval=30,
        decode_responses=True,
    )
