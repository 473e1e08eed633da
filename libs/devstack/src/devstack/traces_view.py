"""Recent traces as terminal waterfalls, read from the trace sink's JSON-lines file.

Each trace: a header (root operation, duration, span count, services, errors, orphans),
the traces it is linked with (a consumer's span links to the request that caused it),
then one row per span: service and span name indented under its parent, kind,
duration, status, a bar on the trace's timeline, and what the span did in a few words.
Failed spans are marked `✗` (red on a terminal), spans whose parent never arrived `!`;
the entry span of a trace a caller started (its parent is the caller's, outside the
system) is the trace's root, not an orphan.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from devstack.span_records import SpanRecord, record_from_json
from devstack.trace_store import rotated_path

BAR_WIDTH = 40
_MAX_LABEL = 64
_MAX_STATEMENT = 60
_RED, _YELLOW, _DIM, _RESET = "\033[31m", "\033[33m", "\033[2m", "\033[0m"

Traces = dict[str, list[SpanRecord]]


@dataclass(frozen=True)
class _Row:
    span: SpanRecord
    depth: int
    orphan: bool

    @property
    def failed(self) -> bool:
        return self.span["status"] == "ERROR"


def load_traces(path: Path) -> Traces:
    """Every trace in the file and its previous generation, spans grouped by trace id."""
    traces: Traces = {}
    for source in (rotated_path(path), path):
        for record in _read(source):
            traces.setdefault(record["trace_id"], []).append(record)
    return traces


def latest(traces: Traces, limit: int) -> list[list[SpanRecord]]:
    """The `limit` traces that ended last, oldest first (so the newest prints last)."""
    ordered = sorted(traces.values(), key=lambda spans: max(s["end_ns"] for s in spans))
    return ordered[-limit:] if limit > 0 else []


def matching(
    traces: Traces, trace_id_prefix: str, *, linked: bool = False
) -> list[list[SpanRecord]]:
    """The traces whose id starts with the prefix; with `linked`, also those linked with them."""
    prefix = trace_id_prefix.lower()
    chosen = [spans for trace_id, spans in traces.items() if trace_id.startswith(prefix)]
    return with_linked(traces, chosen) if linked else chosen


def with_linked(traces: Traces, chosen: list[list[SpanRecord]]) -> list[list[SpanRecord]]:
    """`chosen`, plus every loaded trace linking to or linked from one of them, by start."""
    wanted = {spans[0]["trace_id"] for spans in chosen}
    related = set(wanted)
    for trace_id, spans in traces.items():
        targets = _linked_trace_ids(spans)
        if trace_id in wanted:
            related |= targets & traces.keys()
        elif targets & wanted:
            related.add(trace_id)
    return sorted((traces[trace_id] for trace_id in related), key=_trace_start)


def render_trace(
    spans: list[SpanRecord], *, color: bool = False, linked_from: Iterable[str] = ()
) -> list[str]:
    """The header, link lines, column titles, then one line per span on a shared timeline.

    `linked_from`: ids of other traces whose spans link to this one.
    """
    start = min(s["start_ns"] for s in spans)
    total = max(max(s["end_ns"] for s in spans) - start, 1)
    rows = list(_rows(spans))
    label_width = min(max(len(_TITLE_LABEL), *(len(_label(row)) for row in rows)), _MAX_LABEL)
    lines = [_header(spans, rows, total, color=color)]
    lines.extend(_link_lines(spans, linked_from))
    lines.append(_paint(_titles(label_width), _DIM, color))
    lines.extend(_line(row, label_width, start, total, color=color) for row in rows)
    return lines


def render(
    traces: Iterable[list[SpanRecord]],
    *,
    everything: Traces | None = None,
    color: bool | None = None,
) -> str:
    """Waterfalls of `traces`; `everything` (all loaded traces) shows who links to them.

    `color` defaults to whether stdout is a terminal (and NO_COLOR is unset).
    """
    paint = _stdout_wants_color() if color is None else color
    incoming = _incoming_links(everything or {})
    return "\n\n".join(
        "\n".join(
            render_trace(spans, color=paint, linked_from=incoming.get(spans[0]["trace_id"], ()))
        )
        for spans in traces
    )


def _stdout_wants_color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def _read(path: Path) -> Iterator[SpanRecord]:
    try:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if (record := record_from_json(line)) is not None:
                    yield record
    except FileNotFoundError:
        return


def _trace_start(spans: list[SpanRecord]) -> int:
    return min(s["start_ns"] for s in spans)


def _linked_trace_ids(spans: list[SpanRecord]) -> set[str]:
    own = spans[0]["trace_id"]
    return {
        link["trace_id"]
        for span in spans
        for link in span.get("links", [])
        if link["trace_id"] != own
    }


def _incoming_links(traces: Traces) -> dict[str, list[str]]:
    incoming: dict[str, list[str]] = {}
    for trace_id, spans in traces.items():
        for target in sorted(_linked_trace_ids(spans)):
            incoming.setdefault(target, []).append(trace_id)
    return incoming


def _rows(spans: list[SpanRecord]) -> Iterator[_Row]:
    ids = {s["span_id"] for s in spans}
    children: dict[str, list[SpanRecord]] = {}
    tops: list[SpanRecord] = []
    for span in spans:
        parent = span["parent_span_id"]
        if parent and parent in ids and parent != span["span_id"]:
            children.setdefault(parent, []).append(span)
        else:
            tops.append(span)
    seen: set[str] = set()
    first = min(spans, key=_start)
    for top in sorted(tops, key=_start):
        orphan = bool(top["parent_span_id"]) and not _entered_from_caller(top, first)
        yield from _walk(top, 0, children, seen, orphan=orphan)
    # Spans on a parent cycle are unreachable from any top: still show them, flagged.
    for span in sorted(spans, key=_start):
        if span["span_id"] not in seen:
            yield from _walk(span, 0, children, seen, orphan=True)


def _entered_from_caller(top: SpanRecord, first: SpanRecord) -> bool:
    """The trace's first span is a server span: its parent is the caller's (traceparent)."""
    return top is first and top["kind"] == "SERVER"


def _walk(
    span: SpanRecord,
    depth: int,
    children: dict[str, list[SpanRecord]],
    seen: set[str],
    *,
    orphan: bool,
) -> Iterator[_Row]:
    if span["span_id"] in seen:
        return
    seen.add(span["span_id"])
    yield _Row(span, depth, orphan)
    for child in sorted(children.get(span["span_id"], []), key=_start):
        yield from _walk(child, depth + 1, children, seen, orphan=False)


def _start(span: SpanRecord) -> int:
    return span["start_ns"]


def _header(spans: list[SpanRecord], rows: list[_Row], total_ns: int, *, color: bool) -> str:
    roots = [row.span for row in rows if row.depth == 0 and not row.orphan]
    root = roots[0] if roots else rows[0].span
    caller = (
        f"  (caller's span {root['parent_span_id']})" if roots and root["parent_span_id"] else ""
    )
    services = ", ".join(sorted({s["service"] for s in spans}))
    errors = sum(row.failed for row in rows)
    orphans = sum(row.orphan for row in rows)
    parts = [
        f"trace {spans[0]['trace_id']}",
        f"{_titled(root)} ({root['service']}){caller}" if roots else "(no root span)",
        f"{_ms(total_ns)} ms",
        _count(len(spans), "span"),
        f"services: {services}",
    ]
    if errors:
        parts.append(_paint(_count(errors, "error"), _RED, color))
    if orphans:
        parts.append(_paint(_count(orphans, "orphan"), _YELLOW, color))
    return "  ".join(parts)


def _link_lines(spans: list[SpanRecord], linked_from: Iterable[str]) -> Iterator[str]:
    for span in spans:
        for link in span.get("links", []):
            if link["trace_id"] != span["trace_id"]:
                yield (
                    f"  ↪ {span['service']}: {span['name']} follows from trace "
                    f"{link['trace_id']} (span {link['span_id']})"
                )
    for trace_id in linked_from:
        yield f"  ↩ continued by trace {trace_id}"


_TITLE_LABEL = "SERVICE: SPAN"


def _titles(label_width: int) -> str:
    return (
        f"  {_TITLE_LABEL:<{label_width}}  {'KIND':<8} {'DURATION':>13}  {'STATUS':<6} "
        f"{'TIMELINE':^{BAR_WIDTH + 2}}  WHAT"
    )


def _label(row: _Row) -> str:
    marker = "! " if row.orphan else "✗ " if row.failed else ""
    return f"{'  ' * row.depth}{marker}{row.span['service']}: {row.span['name']}"


def _line(row: _Row, label_width: int, start: int, total: int, *, color: bool) -> str:
    span = row.span
    label = _label(row)
    if len(label) > label_width:
        label = label[: label_width - 1] + "…"
    duration = _ms(span["end_ns"] - span["start_ns"])
    status = "ERROR" if row.failed else "ok"
    line = (
        f"  {label:<{label_width}}  {span['kind'].lower():<8} {duration:>10} ms  "
        f"{status:<6} |{_bar(span, start, total)}|"
    )
    if detail := _detail(span):
        line += f"  {detail}"
    if row.orphan and span["parent_span_id"]:
        line += f"  orphan: parent {span['parent_span_id']} missing"
    if row.failed and span["status_message"]:
        line += f"  {span['status_message'][:80]}"
    if row.failed:
        return _paint(line, _RED, color)
    return _paint(line, _YELLOW, color) if row.orphan else line


def _titled(span: SpanRecord) -> str:
    detail = _detail(span)
    return f"{span['name']} {detail}" if detail else span["name"]


def _detail(span: SpanRecord) -> str:
    """What the span's attributes say in a few words: `POST /v1/auth/login -> 401`."""
    attributes = span["attributes"]
    parts = [
        str(attributes[key]) for key in ("http.method", "http.request.method") if key in attributes
    ]
    if (
        url := attributes.get("url.path")
        or attributes.get("http.target")
        or attributes.get("http.url")
        or attributes.get("url.full")
    ):
        parts.append(urlsplit(str(url)).path or str(url))
    status = attributes.get("http.status_code") or attributes.get("http.response.status_code")
    if status not in (None, "", "0", 0):
        parts.append(f"-> {status}")
    grpc_code = attributes.get("rpc.grpc.status_code", attributes.get("grpc.status_code"))
    if grpc_code not in (None, "", "0", 0):
        parts.append(f"grpc {grpc_code}")
    if statement := attributes.get("db.statement") or attributes.get("db.query.text"):
        parts.append(_squeezed(str(statement)))
    if reason := attributes.get("error.reason") or attributes.get("error.type"):
        parts.append(f"({reason})")
    return " ".join(parts)


def _squeezed(statement: str) -> str:
    text = " ".join(statement.split())
    return text if len(text) <= _MAX_STATEMENT else text[: _MAX_STATEMENT - 1] + "…"


def _bar(span: SpanRecord, start: int, total: int) -> str:
    first = min(int((span["start_ns"] - start) / total * BAR_WIDTH), BAR_WIDTH - 1)
    last = max(first + 1, math.ceil((span["end_ns"] - start) / total * BAR_WIDTH))
    last = min(last, BAR_WIDTH)
    return " " * first + "█" * (last - first) + " " * (BAR_WIDTH - last)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' if number != 1 else ''}"


def _paint(text: str, colour: str, enabled: bool) -> str:
    return f"{colour}{text}{_RESET}" if enabled else text


def _ms(nanoseconds: int) -> str:
    return f"{nanoseconds / 1e6:.2f}"
