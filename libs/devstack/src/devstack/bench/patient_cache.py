"""The patient-record service's read cache, as the benchmark sees it: counted and emptied.

Counted: the service's `cache_requests_total{result=hit|miss|bypass}` Prometheus counters,
read before and after a run, give the hit ratio the run really had, so a "cache miss"
row cannot silently be served from the cache (or a "hit" row from PostgreSQL).

Emptied: before a cache-miss run the cached values of the bench patients are deleted
(`cache:patient:<id>`, the key scheme of medstation_platform.cache.CacheAside). That is
what a TTL expiry does; the generation keys stay, so the cache's invalidation fencing is
untouched. Without it a run would meet patients the previous run (or its warm-up) read
less than a TTL (60 s) ago. A run that outlasts one lap of the patients would meet the
values it cached itself, so during a cache-miss run they are deleted again every
EVICT_INTERVAL_SECONDS (far less than a lap takes), and the hit ratio shows what hit.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

import httpx
import redis.asyncio

CACHE_NAMESPACE = "patient"
_SAMPLE = re.compile(r"^cache_requests_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$", re.MULTILINE)
_RESULT = re.compile(r'result="(?P<result>[^"]*)"')
_CACHE = re.compile(r'cache="(?P<cache>[^"]*)"')
_TIMEOUT_SECONDS = 2.0
_DELETE_BATCH = 500
EVICT_INTERVAL_SECONDS = 0.25


async def cache_reads(metrics_url: str | None) -> dict[str, float] | None:
    """{"hit": n, "miss": n, "bypass": n} of the patient cache so far; None if unreadable."""
    if not metrics_url:
        return None
    try:
        async with httpx.AsyncClient(timeout=_TIMEOUT_SECONDS) as client:
            response = await client.get(metrics_url)
    except httpx.HTTPError:
        return None
    if response.status_code != httpx.codes.OK:
        return None
    return parse_cache_reads(response.text)


def parse_cache_reads(text: str) -> dict[str, float]:
    totals = {"hit": 0.0, "miss": 0.0, "bypass": 0.0}
    for sample in _SAMPLE.finditer(text):
        labels = sample.group("labels")
        cache, result = _CACHE.search(labels), _RESULT.search(labels)
        if cache and result and cache.group("cache") == CACHE_NAMESPACE:
            totals[result.group("result")] = totals.get(result.group("result"), 0.0) + float(
                sample.group("value")
            )
    return totals


def hit_ratio(before: dict[str, float] | None, after: dict[str, float] | None) -> float | None:
    """Hits over all cache reads between two readings; None when there were none."""
    if before is None or after is None:
        return None
    spent = {result: after.get(result, 0.0) - before.get(result, 0.0) for result in after}
    total = sum(spent.values())
    return spent.get("hit", 0.0) / total if total > 0 else None


async def evict(redis_url: str, patient_ids: Sequence[str]) -> None:
    """Delete the cached values of these patients (as an expiry would)."""
    client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=_TIMEOUT_SECONDS)
    try:
        for start in range(0, len(patient_ids), _DELETE_BATCH):
            batch = patient_ids[start : start + _DELETE_BATCH]
            await client.delete(*(f"cache:{CACHE_NAMESPACE}:{pid}" for pid in batch))
    finally:
        await client.aclose()


async def keep_evicting(redis_url: str, patient_ids: Sequence[str]) -> None:
    """Evict the patients' cached values again and again, until cancelled."""
    while True:
        await asyncio.sleep(EVICT_INTERVAL_SECONDS)
        await evict(redis_url, patient_ids)
