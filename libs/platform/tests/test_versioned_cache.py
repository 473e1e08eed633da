from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from medstation_platform.versioned_cache import Versioned, VersionedCache


def _requests(registry: CollectorRegistry, result: str) -> float:
    value = registry.get_sample_value("cache_requests_total", {"cache": "rows", "result": result})
    return value or 0.0


def test_a_kept_value_is_held_with_its_version() -> None:
    cache: VersionedCache[str, str] = VersionedCache(name="rows", max_entries=2)

    cache.keep("a", "v1", "first")
    cache.keep("a", "v2", "second")

    assert cache.held("a") == Versioned("v2", "second")
    assert cache.held("b") is None


def test_the_least_recently_used_value_goes_first() -> None:
    cache: VersionedCache[str, str] = VersionedCache(name="rows", max_entries=2)
    cache.keep("a", "v1", "A")
    cache.keep("b", "v1", "B")

    cache.held("a")  # now more recent than b
    cache.keep("c", "v1", "C")

    assert (cache.held("a"), cache.held("b"), len(cache)) == (Versioned("v1", "A"), None, 2)


def test_a_cache_of_no_entries_keeps_nothing_but_still_counts() -> None:
    registry = CollectorRegistry()
    cache: VersionedCache[str, str] = VersionedCache(name="rows", max_entries=0, registry=registry)

    cache.keep("a", "v1", "A")

    assert (cache.held("a"), len(cache), _requests(registry, "miss")) == (None, 0, 1)


def test_hits_and_misses_are_counted_by_cache_name() -> None:
    registry = CollectorRegistry()
    cache: VersionedCache[str, str] = VersionedCache(name="rows", max_entries=4, registry=registry)
    other: VersionedCache[str, str] = VersionedCache(
        name="others", max_entries=4, registry=registry
    )

    cache.keep("a", "v1", "A")
    cache.served()
    cache.served()
    other.keep("b", "v1", "B")

    assert (_requests(registry, "hit"), _requests(registry, "miss")) == (2, 1)


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        VersionedCache[str, str](name="rows", max_entries=-1)
