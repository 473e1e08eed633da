"""Envoy's own count of requests its local rate limiter turned away (HTTP 429).

Read from the admin endpoint before and after a run: when the gateway's token bucket,
not the service, is what stops a scenario, the table says so instead of leaving a reader
to guess what the errors were.
"""

from __future__ import annotations

import httpx

RATE_LIMITED_STAT = "gateway_rate_limit.http_local_rate_limit.rate_limited"
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
