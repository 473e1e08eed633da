"""Redis Streams with consumer groups, as the worker uses them: summary jobs (ours: we append
and delete) and the patient-record service's events (theirs: we only read and ack).

Every call is bounded: reads take COUNT entries at most and block below the client's
socket timeout; Redis failing becomes QueueUnavailable. A group that vanished (Redis
restarted empty) is created again, from the stream's start, as soon as a read notices.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT, FieldT

from summary.domain import TraceContext
from summary.ports import QueueUnavailable

logger = logging.getLogger(__name__)

_TRACE_FIELDS = ("traceparent", "tracestate")
# Jobs are deleted once acknowledged, so only a vast backlog could reach this; what
# trimming drops is still QUEUED in PostgreSQL, and the reconciler appends it again.
_MAX_JOB_STREAM_LENGTH = 100_000


@dataclass(frozen=True)
class Entry:
    id: str
    fields: Mapping[str, str]


def job_fields(job_id: str, trace_context: TraceContext) -> dict[FieldT, EncodableT]:
    fields: dict[FieldT, EncodableT] = {"job_id": job_id}
    fields.update({key: trace_context[key] for key in _TRACE_FIELDS if key in trace_context})
    return fields


class JobStream:
    """The producer side of the job stream (the service and the reconciler)."""

    def __init__(self, redis: Redis, stream: str) -> None:
        self._redis = redis
        self._stream = stream

    async def enqueue(self, job_id: str, trace_context: TraceContext) -> str:
        try:
            entry_id = await self._redis.xadd(
                self._stream,
                job_fields(job_id, trace_context),
                maxlen=_MAX_JOB_STREAM_LENGTH,
                approximate=True,
            )
        except (RedisError, OSError) as error:
            raise QueueUnavailable(str(error)) from error
        return str(entry_id)

    async def present(self, entry_ids: Sequence[str]) -> set[str]:
        try:
            async with self._redis.pipeline(transaction=False) as pipeline:
                for entry_id in entry_ids:
                    pipeline.xrange(self._stream, min=entry_id, max=entry_id, count=1)
                replies = await pipeline.execute()
        except (RedisError, OSError) as error:
            raise QueueUnavailable(str(error)) from error
        return {entry_id for entry_id, reply in zip(entry_ids, replies, strict=True) if reply}


class StreamGroup:
    """One consumer of one consumer group."""

    def __init__(
        self,
        redis: Redis,
        *,
        stream: str,
        group: str,
        consumer: str,
        delete_acknowledged: bool,
    ) -> None:
        # `redis` must allow a blocking read: a socket timeout above `block_ms` of reads.
        self._redis = redis
        self.stream = stream
        self._group = group
        self._consumer = consumer
        self._delete_acknowledged = delete_acknowledged

    async def ensure_group(self) -> None:
        """Create the group (and the stream) unless it exists; it reads from the start,
        so entries appended before it existed are not skipped."""
        try:
            await self._redis.xgroup_create(self.stream, self._group, id="0", mkstream=True)
            logger.info("consumer group created", extra={"stream": self.stream})
        except ResponseError as error:
            if not str(error).startswith("BUSYGROUP"):
                raise QueueUnavailable(str(error)) from error
        except (RedisError, OSError) as error:
            raise QueueUnavailable(str(error)) from error

    async def read(self, *, count: int, block_ms: int) -> list[Entry]:
        """New entries for this consumer (they stay pending until acknowledged)."""
        reply = await self._call(
            self._redis.xreadgroup(
                self._group, self._consumer, {self.stream: ">"}, count=count, block=block_ms
            )
        )
        if not reply:
            return []
        [(_, entries)] = cast(list[tuple[str, list[tuple[str, dict[str, str]]]]], reply)
        return [Entry(entry_id, fields) for entry_id, fields in entries]

    async def reclaim(self, *, min_idle_ms: int, count: int) -> list[Entry]:
        """Entries delivered to some consumer (a dead one, or ours before a failure) and
        not acknowledged for `min_idle_ms`, now delivered to this one."""
        reply = await self._call(
            self._redis.xautoclaim(
                self.stream, self._group, self._consumer, min_idle_ms, start_id="0-0", count=count
            )
        )
        if not reply:
            return []
        claimed = cast(list[tuple[str, dict[str, str] | None]], reply[1])
        gone = [str(entry_id) for entry_id in (reply[2] if len(reply) > 2 else [])]
        if gone:  # deleted while pending: nothing to process, only to acknowledge
            await self.ack(gone)
        return [Entry(entry_id, fields) for entry_id, fields in claimed if fields]

    async def ack(self, entry_ids: Sequence[str]) -> None:
        if not entry_ids:
            return
        try:
            async with self._redis.pipeline(transaction=True) as pipeline:
                pipeline.xack(self.stream, self._group, *entry_ids)
                if self._delete_acknowledged:
                    pipeline.xdel(self.stream, *entry_ids)
                await pipeline.execute()
        except (RedisError, OSError) as error:
            raise QueueUnavailable(str(error)) from error

    async def _call(self, command: Any) -> Any:
        try:
            return await command
        except ResponseError as error:
            if str(error).startswith("NOGROUP"):
                logger.warning("consumer group missing: creating it", extra={"stream": self.stream})
                await self.ensure_group()
                return None
            raise QueueUnavailable(str(error)) from error
        except (RedisError, OSError) as error:
            raise QueueUnavailable(str(error)) from error
