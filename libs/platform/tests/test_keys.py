import json

import pytest

from medstation_platform.auth.keys import CachedJwks, KeyNotFound

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
