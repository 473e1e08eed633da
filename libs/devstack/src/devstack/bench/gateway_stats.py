"""Envoy's own count of requests its local rate limiter turned away (HTTP 429), and the
size of that limiter's token bucket.

Read from the admin endpoint before and after a run: when the gateway's token bucket,
not the service, is what stops a scenario, the table says so instead of leaving a reader
to guess what the errors were. The bucket's size is read once, so a run against a stack
started with the default limit says up front that it will meet 429s.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

_STAT_PREFIX = "gateway_rate_limit"
# Below this the gateway's own bucket, not the stack, decides what a bench run measures.
BENCH_RATE_LIMIT_PER_SECOND = 100_000
RATE_LIMITED_STAT = f"{_STAT_PREFIX}.http_local_rate_limit.rate_limited"
_TIMEOUT_SECONDS = 2.0


async def rate_limited_count(admin_url: str | None) -> int | None:
    """The counter's value, or None without an admin URL or when it cannot be read."""
    if not admin_url:
        return None
    url = f"{admin_url.rstrip('/')}/stats"
    params = {"filter": f"^{RATE_LIMITED_STAT}$"}
    try:
        async with httpx.AsyncClient(timeout=_TIMEOUT_SECONDS) as client:
            response = await client.get(url, params=params)
    except httpx.HTTPError:
        return None
    for line in response.text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == RATE_LIMITED_STAT and value.strip().isdigit():
            return int(value.strip())
    return None


@dataclass(frozen=True)
class RateLimit:
    """The gateway-wide token bucket, as the running Envoy has it."""

    burst: int
    per_second: float

    def describe(self) -> str:
        return f"{self.per_second:,.0f} req/s, burst {self.burst:,}"


async def rate_limit(admin_url: str | None) -> RateLimit | None:
    """The gateway's bucket from its admin /config_dump; None when it cannot be read."""
    if not admin_url:
        return None
    try:
        async with httpx.AsyncClient(timeout=_TIMEOUT_SECONDS) as client:
            response = await client.get(f"{admin_url.rstrip('/')}/config_dump")
        return find_rate_limit(response.json())
    except (httpx.HTTPError, ValueError):
        return None


def find_rate_limit(config: object) -> RateLimit | None:
    """The token bucket of the filter whose stat prefix is the gateway's, anywhere in `config`."""
    if isinstance(config, dict):
        bucket = config.get("token_bucket")
        if config.get("stat_prefix") == _STAT_PREFIX and isinstance(bucket, dict):
            seconds = float(str(bucket.get("fill_interval", "1s")).rstrip("s") or 1)
            per_fill = int(bucket.get("tokens_per_fill", 1))
            return RateLimit(int(bucket["max_tokens"]), per_fill / seconds)
        children: list[object] = list(config.values())
    elif isinstance(config, list):
        children = config
    else:
        return None
    for child in children:
        if (found := find_rate_limit(child)) is not None:
            return found
    return None


def rate_limit_notes(limit: RateLimit | None) -> list[str]:
    """The report's line about the gateway's bucket, with a warning when it is too small."""
    if limit is None:
        return []
    note = f"gateway rate limit: {limit.describe()} (the running Envoy's config)"
    if limit.per_second < BENCH_RATE_LIMIT_PER_SECOND:
        note += (
            " — below what the bench sends, so expect 429s: start the stack with "
            "MEDSTATION_GATEWAY_RATE_LIMIT_PER_SECOND=1000000 and "
            "MEDSTATION_GATEWAY_RATE_LIMIT_BURST=1000000 (`make bench` does, for a stack "
            "it starts itself)"
        )
    return [note]
