"""Our gRPC load generator: N concurrent callers on one grpc.aio channel, for a fixed time.

Each caller loops until the deadline, taking the next sequence number (the scenario maps
it to a request: a patient id from a cycle, ...), timing each call into a histogram and
counting failures by status code. Calls carry their own deadline, and the whole run is
bounded by duration + one call's deadline, so a stuck server cannot hang the bench.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import grpc.aio

from devstack.bench.latency import LatencyHistogram
from devstack.bench.load_stats import LoadStats

Call = Callable[[int], Awaitable[object]]

# How long past the deadline the run may take: the last calls finishing, plus slack.
_FINISH_GRACE_SECONDS = 5.0


async def run_grpc_load(
    call: Call,
    *,
    concurrency: int,
    duration: float,
    call_timeout: float,
    start: int = 0,
) -> LoadStats:
    """Run `call(n)` for n = start, start+1, ... from `concurrency` callers for `duration` s."""
    histogram = LatencyHistogram()
    errors: Counter[str] = Counter()
    sequence = itertools.count(start)
    began = time.perf_counter()
    stop_at = began + duration

    async def caller() -> None:
        while time.perf_counter() < stop_at:
            number = next(sequence)
            sent = time.perf_counter()
            try:
                await call(number)
            except grpc.aio.AioRpcError as error:
                errors[error.code().name] += 1
            else:
                histogram.record(time.perf_counter() - sent)

    callers = asyncio.gather(*(caller() for _ in range(concurrency)))
    await asyncio.wait_for(callers, duration + call_timeout + _FINISH_GRACE_SECONDS)
    elapsed = time.perf_counter() - began
    failed = sum(errors.values())
    return LoadStats(
        requests=histogram.count + failed,
        ok=histogram.count,
        errors=failed,
        seconds=elapsed,
        p50_seconds=histogram.percentile(50),
        p99_seconds=histogram.percentile(99),
        error_kinds=dict(errors),
    )
