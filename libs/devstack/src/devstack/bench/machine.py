"""Facts about the machine and software a benchmark ran on, for the report.

Numbers from a shared 2-core machine mean little without them: the CPU, the versions of
everything on the request path, and how busy the machine already was (load average).
Each fact that cannot be read says "unknown" rather than failing the benchmark.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import grpc
import psycopg
import redis
from google import protobuf

from devstack import envoy

_UNKNOWN = "unknown"
_TOOL_TIMEOUT_SECONDS = 10


def machine_facts(
    postgres_admin_url: str, redis_url: str, wrk: str | None
) -> list[tuple[str, str]]:
    """(name, value) rows in a stable order."""
    facts: list[tuple[str, Callable[[], str]]] = [
        ("CPUs (nproc)", lambda: str(len(os.sched_getaffinity(0)))),
        ("CPU model", _cpu_model),
        ("memory", _memory),
        ("kernel", platform.release),
        ("load average (1/5/15 min) at start", _load_average),
        ("Python", platform.python_version),
        ("grpcio / protobuf", lambda: f"{grpc.__version__} / {protobuf.__version__}"),
        ("Envoy", _envoy_version),
        ("wrk", lambda: _wrk_version(wrk)),
        ("PostgreSQL", lambda: _postgres_version(postgres_admin_url)),
        ("Redis", lambda: _redis_version(redis_url)),
    ]
    return [(name, _or_unknown(read)) for name, read in facts]


def _or_unknown(read: Callable[[], str]) -> str:
    try:
        return read() or _UNKNOWN
    except Exception:  # a fact we cannot read must not stop the benchmark
        return _UNKNOWN


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _memory() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return _UNKNOWN


def _load_average() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def _envoy_version() -> str:
    output = _run([str(envoy.envoy_binary()), "--version"])
    found = re.search(r"/(\d+\.\d+\.\d+)/", output)
    return found.group(1) if found else output.strip()


def _wrk_version(binary: str | None) -> str:
    if binary is None:
        return "not installed"
    # `wrk -v` prints its version line and then the usage, exiting 1.
    return _run([binary, "-v"]).splitlines()[0].split(" Copyright")[0].strip()


def _run(command: list[str]) -> str:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=_TOOL_TIMEOUT_SECONDS, check=False
    )
    return result.stdout + result.stderr


def _postgres_version(admin_url: str) -> str:
    with psycopg.connect(admin_url, connect_timeout=3) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else _UNKNOWN


def _redis_version(url: str) -> str:
    client = redis.Redis.from_url(url, socket_timeout=3)
    try:
        info = client.info("server")
    finally:
        client.close()
    return str(info.get("redis_version", _UNKNOWN))
