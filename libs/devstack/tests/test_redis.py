from __future__ import annotations

from pathlib import Path

import redis

from devstack.ports import free_port
from devstack.redis import ensure_redis


def test_running_redis_is_used_as_is(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping()
    finally:
        client.close()


def test_starts_a_local_server_when_none_answers(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"

    assert ensure_redis(url, tmp_path, timeout=30) == url

    client = redis.Redis.from_url(url)
    try:
        assert client.config_get("save") == {"save": ""}
    finally:
        client.shutdown(nosave=True)
        client.close()
