"""Where received spans go: a bounded in-memory window, and a rotating JSON-lines file."""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path

from devstack.span_records import SpanRecord

DEFAULT_MAX_TRACES = 2_000
DEFAULT_MAX_MEMORY_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_FILE_BYTES = 32 * 1024 * 1024


class TraceStore:
    """The most recent traces, oldest evicted first once either bound is exceeded.

    Sizes are measured as the JSON length of each span, a fair stand-in for memory.
    """

    def __init__(
        self, max_traces: int = DEFAULT_MAX_TRACES, max_bytes: int = DEFAULT_MAX_MEMORY_BYTES
    ) -> None:
        self._max_traces = max_traces
        self._max_bytes = max_bytes
        self._traces: OrderedDict[str, list[SpanRecord]] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._bytes = 0

    def add(self, record: SpanRecord, size: int) -> None:
        trace_id = record["trace_id"]
        self._traces.setdefault(trace_id, []).append(record)
        self._traces.move_to_end(trace_id)
        self._sizes[trace_id] = self._sizes.get(trace_id, 0) + size
        self._bytes += size
        while len(self._traces) > self._max_traces or (
            self._bytes > self._max_bytes and len(self._traces) > 1
        ):
            evicted, _ = self._traces.popitem(last=False)
            self._bytes -= self._sizes.pop(evicted)

    def trace(self, trace_id: str) -> list[SpanRecord]:
        return list(self._traces.get(trace_id, []))

    def trace_ids(self) -> list[str]:
        """Oldest first, by when each trace last received a span."""
        return list(self._traces)


class TraceLog:
    """Appends spans as JSON lines; past `max_bytes` the file moves to `<name>.1`.

    Readers see the previous generation in `<name>.1` and the current one in the file.
    """

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> None:
        self.path = path
        self._max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, lines: list[str]) -> None:
        payload = "".join(line + "\n" for line in lines)
        size = self._size()
        if size and size + len(payload) > self._max_bytes:
            os.replace(self.path, rotated_path(self.path))
        with self.path.open("a", encoding="utf-8") as log:
            log.write(payload)

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0


def rotated_path(path: Path) -> Path:
    return path.with_name(path.name + ".1")


def span_line(record: SpanRecord) -> str:
    return json.dumps(record, separators=(",", ":"), sort_keys=True)
