"""Latency percentiles from recorded samples, HdrHistogram-style: log buckets, bounded memory.

A bucket is 1 % wide (relative), so any percentile is within 1 % of the exact sample
value, while a 10-minute run at 10 000 req/s still needs only a few hundred counters.
"""

from __future__ import annotations

import math
from collections import Counter

_GROWTH = 1.01
_LOG_GROWTH = math.log(_GROWTH)
_FLOOR_SECONDS = 1e-6  # below a microsecond everything is one bucket


class LatencyHistogram:
    def __init__(self) -> None:
        self._buckets: Counter[int] = Counter()
        self.count = 0

    def record(self, seconds: float) -> None:
        self._buckets[_bucket(seconds)] += 1
        self.count += 1

    def merge(self, other: LatencyHistogram) -> None:
        self._buckets.update(other._buckets)
        self.count += other.count

    def percentile(self, percent: float) -> float | None:
        """The latency (seconds) that `percent` % of samples are at or below; None if empty."""
        if not 0 < percent <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percent}")
        if not self.count:
            return None
        rank = math.ceil(self.count * percent / 100)
        seen = 0
        for bucket in sorted(self._buckets):
            seen += self._buckets[bucket]
            if seen >= rank:
                return _upper_bound(bucket)
        raise AssertionError("unreachable: the counts add up to self.count")


def _bucket(seconds: float) -> int:
    return max(0, math.ceil(math.log(max(seconds, _FLOOR_SECONDS) / _FLOOR_SECONDS) / _LOG_GROWTH))


def _upper_bound(bucket: int) -> float:
    return float(_FLOOR_SECONDS * _GROWTH**bucket)
