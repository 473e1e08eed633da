"""StreamMessage, measured as a user feels it: time to the first chunk of the reply, and
to its end, which wrk cannot see.

Two clients walk the same (chat, question) cycle as SendMessage: directly over gRPC
(grpc.aio, the chat service's StreamMessage), and through the gateway with httpx, which
reads the newline-delimited JSON that Envoy transcodes the stream into. The first chunk
is the first message of the stream (a `delta`, or `completed` for an empty reply); a
stream counts as successful only when its `completed` message arrived. Every call is
bounded by the call timeout, and a run by its duration plus one call timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc.aio
import httpx

from devstack.api_session import Metadata
from devstack.bench.dataset import BenchData
from devstack.bench.latency import LatencyHistogram
from devstack.bench.load_stats import LoadStats
from devstack.bench.scenarios import chat_cycle
from medstation.chat.v1 import chat_service_pb2 as chat_pb
from medstation.chat.v1 import chat_service_pb2_grpc as chat_grpc

# Sends the stream for sequence number n; returns seconds to its first chunk.
StreamCall = Callable[[int], Awaitable[float]]
_FINISH_GRACE_SECONDS = 5.0


class StreamFailed(Exception):
    """A stream that did not deliver a whole reply; `kind` is its error-table label."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass(frozen=True)
class StreamStats:
    """A run's streams: `load` times them to the end, `first_*` to the first chunk."""

    load: LoadStats
    first_p50_seconds: float | None
    first_p99_seconds: float | None


async def run_stream_load(
    call: StreamCall,
    *,
    concurrency: int,
    duration: float,
    call_timeout: float,
    start: int = 0,
) -> StreamStats:
    """`concurrency` callers streaming replies back to back for `duration` seconds."""
    first_chunk = LatencyHistogram()
    complete = LatencyHistogram()
    errors: Counter[str] = Counter()
    sequence = itertools.count(start)
    began = time.perf_counter()
    stop_at = began + duration

    async def caller() -> None:
        while time.perf_counter() < stop_at:
            sent = time.perf_counter()
            try:
                first = await asyncio.wait_for(call(next(sequence)), call_timeout)
            except grpc.aio.AioRpcError as error:
                errors[error.code().name] += 1
            except StreamFailed as error:
                errors[error.kind] += 1
            except TimeoutError:
                errors["timeout"] += 1
            except httpx.HTTPError as error:
                errors[type(error).__name__] += 1
            else:
                complete.record(time.perf_counter() - sent)
                first_chunk.record(first)

    callers = asyncio.gather(*(caller() for _ in range(concurrency)))
    await asyncio.wait_for(callers, duration + call_timeout + _FINISH_GRACE_SECONDS)
    failed = sum(errors.values())
    load = LoadStats(
        requests=complete.count + failed,
        ok=complete.count,
        errors=failed,
        seconds=time.perf_counter() - began,
        p50_seconds=complete.percentile(50),
        p99_seconds=complete.percentile(99),
        error_kinds=dict(errors),
    )
    return StreamStats(load, first_chunk.percentile(50), first_chunk.percentile(99))


def grpc_stream_call(
    chats: chat_grpc.ChatServiceAsyncStub, data: BenchData, metadata: Metadata, timeout: float
) -> StreamCall:
    requests = [
        chat_pb.StreamMessageRequest(chat_id=chat_id, content=question)
        for chat_id, question in chat_cycle(data)
    ]

    async def call(n: int) -> float:
        sent = time.perf_counter()
        first: float | None = None
        completed = False
        stream = chats.StreamMessage(
            requests[n % len(requests)], metadata=metadata, timeout=timeout
        )
        async for event in stream:
            if first is None:
                first = time.perf_counter() - sent
            completed = completed or event.WhichOneof("event") == "completed"
        return _finished(first, completed)

    return call


def http_stream_call(client: httpx.AsyncClient, data: BenchData, token: str) -> StreamCall:
    """Through the gateway; `client` has the gateway as base URL and the timeouts."""
    cycle = chat_cycle(data)
    headers = {"Authorization": f"Bearer {token}"}

    async def call(n: int) -> float:
        chat_id, question = cycle[n % len(cycle)]
        sent = time.perf_counter()
        first: float | None = None
        completed = False
        path = f"/v1/chats/{chat_id}/messages:stream"
        body = {"content": question}
        async with client.stream("POST", path, json=body, headers=headers) as response:
            if response.status_code != httpx.codes.OK:
                await response.aread()
                raise StreamFailed(f"HTTP {response.status_code}")
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                if first is None:
                    first = time.perf_counter() - sent
                event = json.loads(line)
                if not isinstance(event, dict) or not {"delta", "completed"} & event.keys():
                    raise StreamFailed("error in stream")  # a status Envoy wrote mid-stream
                completed = completed or "completed" in event
        return _finished(first, completed)

    return call


def _finished(first: float | None, completed: bool) -> float:
    if first is None or not completed:
        raise StreamFailed("incomplete")
    return first


def http_client(gateway_url: str, concurrency: int, timeout: float) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=gateway_url, timeout=timeout, limits=limits)
