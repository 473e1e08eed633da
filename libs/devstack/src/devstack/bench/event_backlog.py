"""Waiting out the echo of the bench's own writes before it measures anything else.

Making patients fresh for a summary (bench.summary_data) creates and later deletes notes;
each change is an event that patient-record's outbox relay appends to a Redis stream and
the summary worker then handles. Left alone, that work would run during the next
measured run and load the same two cores. So after such writes the bench waits until
the stream has received at least that many events and the worker's consumer group has
been delivered and acknowledged every one after the mark (older entries still pending,
held by a consumer that died, are not ours to wait for). The wait is bounded; a stack
we cannot observe gets a fixed pause instead.

The stream and group names are read from the summary worker's environment, as the
stack started it, with the services' defaults when it sets none.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio
from redis.exceptions import RedisError

from devstack.bench.processes import process_listening_on

STREAM_VARIABLE = "MEDSTATION_EVENTS_STREAM"
GROUP_VARIABLE = "MEDSTATION_EVENTS_GROUP"
DEFAULT_STREAM = "medstation.patient.events"
DEFAULT_GROUP = "summary"
FALLBACK_PAUSE_SECONDS = 1.0
_LIMIT_SECONDS = 60.0
_POLL_SECONDS = 0.1
_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class EventStream:
    redis_url: str
    stream: str
    group: str


def event_stream(redis_url: str, worker_addr: str | None) -> EventStream:
    image = process_listening_on(worker_addr) if worker_addr else None
    env = image.env if image is not None else {}
    return EventStream(
        redis_url,
        env.get(STREAM_VARIABLE, DEFAULT_STREAM),
        env.get(GROUP_VARIABLE, DEFAULT_GROUP),
    )


@dataclass(frozen=True)
class Mark:
    added: int  # entries appended to the stream so far
    last_id: tuple[int, int]  # the newest entry's id


class EventBacklog:
    """Counts events from a mark, and waits until they have all been handled."""

    def __init__(self, events: EventStream) -> None:
        self._events = events

    async def mark(self) -> Mark | None:
        """Where the stream is now (None: not observable, or no stream yet)."""
        info = await self._call("xinfo_stream", self._events.stream)
        if not isinstance(info, dict):
            return None
        return Mark(int(info.get("entries-added", 0)), _id(info.get("last-generated-id")))

    async def wait_handled(self, mark: Mark | None, expected: int) -> None:
        """Until `expected` events after `mark` arrived and the group has handled them."""
        if mark is None:
            await asyncio.sleep(FALLBACK_PAUSE_SECONDS)
            return
        give_up_at = time.monotonic() + _LIMIT_SECONDS
        while time.monotonic() < give_up_at:
            if await self._handled(mark, expected):
                return
            await asyncio.sleep(_POLL_SECONDS)

    async def _handled(self, mark: Mark, expected: int) -> bool:
        stream = await self._call("xinfo_stream", self._events.stream)
        groups = await self._call("xinfo_groups", self._events.stream)
        if not isinstance(stream, dict) or not isinstance(groups, list):
            return True  # the stream went away: nothing to wait for
        if int(stream.get("entries-added", 0)) < mark.added + expected:
            return False  # the relay has not published them all yet
        group = next((g for g in groups if _text(g.get("name")) == self._events.group), None)
        if group is None:
            return True  # no worker reads the events
        if _id(group.get("last-delivered-id")) < _id(stream.get("last-generated-id")):
            return False
        pending = await self._call("xpending", self._events.stream, self._events.group)
        newest = pending.get("max") if isinstance(pending, dict) else None
        return newest is None or _id(newest) <= mark.last_id

    async def _call(self, command: str, *args: str) -> Any:
        client = redis.asyncio.Redis.from_url(
            self._events.redis_url, socket_timeout=_TIMEOUT_SECONDS
        )
        try:
            return await getattr(client, command)(*args)
        except RedisError:  # no such stream, or Redis unreachable: nothing to wait for
            return None
        finally:
            await client.aclose()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id(value: object) -> tuple[int, int]:
    """A stream entry id ("1700000000000-3") as a comparable pair; (0, 0) if absent."""
    milliseconds, _, sequence = _text(value).partition("-") if value else ("0", "", "0")
    try:
        return int(milliseconds), int(sequence or 0)
    except ValueError:
        return 0, 0
