import json

import pytest

from medstation_platform.auth.keys import CachedJwks, KeyNotFound, KeysUnavailable

DOC = {
    "keys": [
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
            "kid": "k1",
        }
    ]
}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_keys_are_cached_and_unknown_kids_refresh_at_most_once_per_interval() -> None:
    fetches = 0

    async def fetch() -> bytes:
        nonlocal fetches
        fetches += 1
        return json.dumps(DOC).encode()

    clock = Clock()
    keys = CachedJwks(fetch, ttl_seconds=300, min_refresh_seconds=10, clock=clock)
    await keys.key("k1")
    await keys.key("k1")
    assert fetches == 1
    clock.now = 1
    for _ in range(5):
        with pytest.raises(KeyNotFound):
            await keys.key("forged")
    assert fetches == 1  # a flood of unknown kids does not hammer the key source
    clock.now = 20
    with pytest.raises(KeyNotFound):
        await keys.key("forged")
    assert fetches == 2
    clock.now = 400
    await keys.key("k1")
    assert fetches == 3  # stale after the TTL


async def test_an_unreachable_key_source_is_unavailable_not_a_crash() -> None:
    attempts = 0

    async def down() -> bytes:
        nonlocal attempts
        attempts += 1
        raise ConnectionError("user service down")

    clock = Clock()
    keys = CachedJwks(down, clock=clock)
    for _ in range(3):
        with pytest.raises(KeysUnavailable):
            await keys.key("k1")
    assert attempts == 1  # callers do not queue up behind a source that just failed
    clock.now = 2
    with pytest.raises(KeysUnavailable):
        await keys.key("k1")
    assert attempts == 2


async def test_known_keys_outlive_a_failed_refresh() -> None:
    up = True

    async def flaky() -> bytes:
        if not up:
            raise ConnectionError("user service down")
        return json.dumps(DOC).encode()

    clock = Clock()
    keys = CachedJwks(flaky, ttl_seconds=300, min_refresh_seconds=10, clock=clock)
    await keys.key("k1")
    up = False
    clock.now = 400  # stale: a refresh is attempted and fails
    assert (await keys.key("k1")).key_id == "k1"
