"""The patient-record service's in-process patient cache, as the benchmark counts it.

The service exports `cache_requests_total{cache="patient", result="hit"|"miss"}`. Read
before and after a measured run, those counters give the hit ratio the run really had,
so a row meant to read from PostgreSQL cannot silently be served from the cache (or a
row meant to hit the cache from PostgreSQL) without the report showing it. The cache is
per process: with replicas, one URL counts the reads of one replica.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

CACHE_NAME = "patient"
HIT = "hit"
_SAMPLE = re.compile(r"^cache_requests_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)", re.MULTILINE)
_LABEL = re.compile(r'(?P<name>\w+)="(?P<value>[^"]*)"')
_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class CacheReads:
    """The patient cache's reads counted so far: all of them, and those that hit."""

    reads: float
    hits: float


async def cache_reads(metrics_url: str | None) -> CacheReads | None:
    """The counters at `metrics_url` now; None without a URL or when it cannot be read."""
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


def parse_cache_reads(text: str) -> CacheReads:
    """The patient cache's counters in Prometheus text; other caches' are left out."""
    reads = hits = 0.0
    for sample in _SAMPLE.finditer(text):
        labels = {label["name"]: label["value"] for label in _LABEL.finditer(sample["labels"])}
        if labels.get("cache") != CACHE_NAME:
            continue
        value = float(sample["value"])
        reads += value
        if labels.get("result") == HIT:
            hits += value
    return CacheReads(reads, hits)


def hit_ratio(before: CacheReads | None, after: CacheReads | None) -> float | None:
    """Hits over all the cache's reads between two readings.

    None when either reading is missing, when there was no read in between, or when the
    counters went down (the service restarted: what it counted before is gone).
    """
    if before is None or after is None:
        return None
    reads, hits = after.reads - before.reads, after.hits - before.hits
    if reads <= 0 or hits < 0:
        return None
    return hits / reads
