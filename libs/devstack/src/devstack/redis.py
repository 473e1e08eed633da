"""A Redis server to use: the one named by MEDSTATION_REDIS_URL, or a local one we start."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import redis

REDIS_URL_ENV = "MEDSTATION_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class RedisUnavailableError(RuntimeError):
    """No usable Redis server, with what to do about it."""


def redis_url_from_env(environ: Mapping[str, str] = os.environ) -> str:
    return environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL


def ensure_redis(url: str, run_dir: Path, timeout: float = 30.0) -> str:
    """Return `url` once Redis answers PING there, starting a local server if none does.

    A started server keeps nothing on disk (like the machine's own), and writes its log
    and pid file into `run_dir`.
    """
    failure = _ping(url)
    if failure is None:
        return url
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if host not in ("127.0.0.1", "localhost") or "refused" not in failure.lower():
        raise RedisUnavailableError(f"Redis at {host}:{port} is not usable: {failure}")
    _start(port, run_dir)
    _wait_until_answering(url, timeout)
    return url


def _ping(url: str) -> str | None:
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        return str(error) or type(error).__name__
    finally:
        client.close()
    return None


def _start(port: int, run_dir: Path) -> None:
    server = shutil.which("redis-server")
    if server is None:
        raise RedisUnavailableError(
            "redis-server is not installed: run `make venv` (installs Debian's redis-server "
            f"as root) or set {REDIS_URL_ENV} to a server you have"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    sys.stderr.write(f"devstack: starting redis-server on 127.0.0.1:{port}\n")
    subprocess.run(
        [
            server,
            "--daemonize", "yes",
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(run_dir),
            "--logfile", str(run_dir / f"redis-{port}.log"),
            "--pidfile", str(run_dir / f"redis-{port}.pid"),
        ],
        check=True,
    )  # fmt: skip


def _wait_until_answering(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (failure := _ping(url)) is not None:
        if time.monotonic() > deadline:
            raise RedisUnavailableError(
                f"Redis did not answer PING within {timeout:.0f} s: {failure}"
            )
        time.sleep(0.05)  # poll interval between PINGs, not a readiness guess
