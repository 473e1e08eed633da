"""An in-process cache whose entries are checked against their source on every read.

Each value is kept with the version of the row it was built from. A reader that must ask
the database anyway (to check access and record the read, say) sends the version it
holds along; the database answers with the row's current version, and the full row only
when that differs. So a hit saves building the value, never the check: nothing cached
is ever served after its row changed, and no invalidation has to reach every process.

Bounded: at most `max_entries` values, the least recently used dropped first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter

from medstation_platform.metrics import shared_metric

KeyT = TypeVar("KeyT")
ValueT = TypeVar("ValueT")


@dataclass(frozen=True)
class Versioned(Generic[ValueT]):
    version: str
    value: ValueT


class VersionedCache(Generic[KeyT, ValueT]):
    """Values by key with their row versions; with a `registry`, hits and misses are
    counted as `cache_requests_total{cache=name, result=hit|miss}`."""

    def __init__(
        self, *, name: str, max_entries: int, registry: CollectorRegistry | None = None
    ) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must not be negative")
        self._max_entries = max_entries
        self._entries: OrderedDict[KeyT, Versioned[ValueT]] = OrderedDict()
        requests = None if registry is None else _requests(registry)
        self._hits = None if requests is None else requests.labels(name, "hit")
        self._misses = None if requests is None else requests.labels(name, "miss")

    def held(self, key: KeyT) -> Versioned[ValueT] | None:
        """The value held for `key` and its version, to check against the source."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def keep(self, key: KeyT, version: str, value: ValueT) -> None:
        """Holds `value`, built from `key`'s row at `version` (a miss, counted)."""
        if self._misses is not None:
            self._misses.inc()
        if self._max_entries == 0:
            return
        self._entries[key] = Versioned(version, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def served(self) -> None:
        """A value held was still current and was served (a hit, counted)."""
        if self._hits is not None:
            self._hits.inc()

    def __len__(self) -> int:
        return len(self._entries)


def _requests(registry: CollectorRegistry) -> Counter:
    return shared_metric(
        registry,
        "cache_requests_total",
        lambda into: Counter(
            "cache_requests_total",
            "Reads of an in-process cache: hit (the held version was current) or miss.",
            ["cache", "result"],
            registry=into,
        ),
    )
