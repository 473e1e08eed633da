"""Unary gRPC load with h2load (nghttp2): the direct path's ceiling, measured by a client
written in C, so the load generator is not what stops it.

h2load knows nothing of gRPC, but a unary call is one HTTP/2 POST whose body is the
length-prefixed request message: the bench builds that body once and h2load sends it
on every request. Percentiles come from its per-request log (`--log-file`: start,
status, microseconds). A gRPC error would still be HTTP 200 (the status
is in the trailers), so the caller checks one call over gRPC before trusting the rows.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from devstack.bench.latency import LatencyHistogram
from devstack.bench.load_stats import LoadStats
from devstack.bench.tool_run import run_to_end

_REQUESTS = re.compile(
    r"^requests: (?P<total>\d+) total, \d+ started, (?P<done>\d+) done, "
    r"(?P<succeeded>\d+) succeeded, (?P<failed>\d+) failed",
    re.MULTILINE,
)
_OK_STATUS = range(200, 300)


class H2loadError(RuntimeError):
    """h2load failed or printed something we could not read; the message has its output."""


def h2load_binary() -> str | None:
    return shutil.which("h2load")


def h2load_command(
    binary: str,
    url: str,
    body: Path,
    log: Path,
    *,
    concurrency: int,
    duration: float,
    headers: Sequence[str] = (),
) -> list[str]:
    """One connection per concurrent caller, one call in flight on each (`-m 1`), like wrk."""
    return [
        binary,
        f"--clients={concurrency}",
        "--max-concurrent-streams=1",
        "--threads=1",  # ~100 000 req/s from one thread: more would only take a core away
        f"--duration={max(1, round(duration * 1000))}ms",  # whole units only
        f"--data={body}",
        f"--log-file={log}",
        "--header=content-type: application/grpc",
        "--header=te: trailers",
        *(f"--header={header}" for header in headers),
        url,
    ]


async def run_h2load(
    binary: str,
    url: str,
    body: bytes,
    *,
    concurrency: int,
    duration: float,
    workdir: Path,
) -> LoadStats:
    """`duration` seconds of `body` POSTed to `url` (a warm-up is a run of its own)."""
    body_path, log_path = workdir / "h2load-body.bin", workdir / "h2load-requests.tsv"
    body_path.write_bytes(body)
    log_path.unlink(missing_ok=True)
    command = h2load_command(
        binary,
        url,
        body_path,
        log_path,
        concurrency=concurrency,
        duration=duration,
    )
    text = await run_to_end(command, seconds=duration, error=H2loadError)
    log = await asyncio.to_thread(log_path.read_text, errors="replace")
    return parse_h2load(text, log, duration)


def parse_h2load(output: str, log: str, seconds: float) -> LoadStats:
    """Counts from h2load's summary, latencies of the successful requests from its log."""
    found = _REQUESTS.search(output)
    if found is None:
        raise H2loadError(f"no 'requests: ...' line in h2load's output:\n{output[-3000:]}")
    latency = LatencyHistogram()
    statuses: dict[str, int] = {}
    for line in log.splitlines():
        fields = line.split("\t")
        if len(fields) < 3 or not fields[1].isdigit():
            continue
        status = int(fields[1])
        if status in _OK_STATUS:
            latency.record(int(fields[2]) / 1e6)
        else:
            statuses[f"HTTP {status}"] = statuses.get(f"HTTP {status}", 0) + 1
    # "failed" is the non-2xx answers plus the requests with no answer (stream errors).
    kinds = dict(statuses)
    if (unanswered := int(found.group("failed")) - sum(statuses.values())) > 0:
        kinds["stream error"] = unanswered
    errors = sum(kinds.values())
    return LoadStats(
        requests=latency.count + errors,
        ok=latency.count,
        errors=errors,
        seconds=seconds,
        p50_seconds=latency.percentile(50),
        p99_seconds=latency.percentile(99),
        error_kinds=kinds,
    )
