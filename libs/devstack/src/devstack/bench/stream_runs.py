"""StreamMessage on both paths at every concurrency level: warm-up, then a measured run
bracketed by CPU snapshots, like the load scenarios (bench.runner)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from devstack.api_session import ApiSession
from devstack.bench import cpu
from devstack.bench.dataset import BenchData
from devstack.bench.streaming import (
    StreamCall,
    StreamStats,
    grpc_stream_call,
    http_client,
    http_stream_call,
    run_stream_load,
)
from devstack.bench.vias import VIA_DIRECT, VIA_GATEWAY
from medstation.chat.v1 import chat_service_pb2_grpc as chat_grpc

TITLE = "StreamMessage (time to first chunk)"
STREAM_LABELS = {
    VIA_GATEWAY: "gateway · REST NDJSON · httpx",
    VIA_DIRECT: "direct · gRPC stream · grpc.aio",
}


@dataclass(frozen=True)
class StreamResult:
    via: str
    concurrency: int
    stats: StreamStats
    cpu_seconds: dict[str, float]

    def cpu_us_per_stream(self, group: str) -> float | None:
        """CPU per completed stream."""
        if not self.stats.load.ok or group not in self.cpu_seconds:
            return None
        return self.cpu_seconds[group] * 1e6 / self.stats.load.ok


@dataclass(frozen=True)
class StreamSetup:
    gateway_url: str
    chats: chat_grpc.ChatServiceAsyncStub
    session: ApiSession
    data: BenchData
    readers: dict[str, cpu.CpuReader]
    call_timeout: float


async def measure_streams(
    setup: StreamSetup,
    vias: Sequence[str],
    levels: Sequence[int],
    *,
    warmup: float,
    duration: float,
    log: Callable[[str], None],
) -> list[StreamResult]:
    meter = cpu.CpuMeter(setup.readers)
    cursor = 0  # one walk through the chat cycle, as for the load scenarios
    results = []
    for via in vias:
        for level in levels:
            async with http_client(setup.gateway_url, level, setup.call_timeout) as client:
                call = await _call(setup, via, client)
                if warmup > 0:
                    warm = await _run(setup, call, level, warmup, cursor)
                    cursor += warm.load.requests
                before = meter.snapshot()
                stats = await _run(setup, call, level, duration, cursor)
                after = meter.snapshot()
            cursor += stats.load.requests
            result = StreamResult(via, level, stats, cpu.CpuMeter.spent(before, after))
            log(_line(result))
            results.append(result)
    return results


async def _call(setup: StreamSetup, via: str, client: httpx.AsyncClient) -> StreamCall:
    if via == VIA_GATEWAY:
        return http_stream_call(client, setup.data, await setup.session.access_token())
    metadata = await setup.session.metadata()
    return grpc_stream_call(setup.chats, setup.data, metadata, setup.call_timeout)


async def _run(
    setup: StreamSetup, call: StreamCall, level: int, seconds: float, start: int
) -> StreamStats:
    return await run_stream_load(
        call, concurrency=level, duration=seconds, call_timeout=setup.call_timeout, start=start
    )


def _line(result: StreamResult) -> str:
    load = result.stats.load
    return (
        f"{'StreamMessage':<24} {result.via:<8} c={result.concurrency:<3} "
        f"{load.ok_per_second:9.1f} streams/s  first chunk p50 "
        f"{_ms(result.stats.first_p50_seconds)} ms p99 {_ms(result.stats.first_p99_seconds)} ms  "
        f"errors {load.errors}"
    )


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.2f}"
