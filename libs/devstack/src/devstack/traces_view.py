"""Recent traces as terminal waterfalls, read from the trace sink's JSON-lines file."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from devstack.span_records import SpanRecord, record_from_json
from devstack.trace_store import rotated_path

BAR_WIDTH = 40
_MAX_LABEL = 64


@dataclass(frozen=True)
class _Row:
    span: SpanRecord
    depth: int
    orphan: bool


def load_traces(path: Path) -> dict[str, list[SpanRecord]]:
    """Every trace in the file and its previous generation, spans grouped by trace id."""
    traces: dict[str, list[SpanRecord]] = {}
    for source in (rotated_path(path), path):
        for record in _read(source):
            traces.setdefault(record["trace_id"], []).append(record)
    return traces


def latest(traces: dict[str, list[SpanRecord]], limit: int) -> list[list[SpanRecord]]:
    """The `limit` traces that ended last, oldest first (so the newest prints last)."""
    ordered = sorted(traces.values(), key=lambda spans: max(s["end_ns"] for s in spans))
    return ordered[-limit:] if limit > 0 else []


def matching(traces: dict[str, list[SpanRecord]], trace_id_prefix: str) -> list[list[SpanRecord]]:
    prefix = trace_id_prefix.lower()
    return [spans for trace_id, spans in traces.items() if trace_id.startswith(prefix)]


def render_trace(spans: list[SpanRecord]) -> list[str]:
    """A header line, then one line per span indented under its parent on a shared timeline."""
    start = min(s["start_ns"] for s in spans)
    total = max(max(s["end_ns"] for s in spans) - start, 1)
    rows = list(_rows(spans))
    label_width = min(max(len(_label(row)) for row in rows), _MAX_LABEL)
    lines = [_header(spans, rows, total)]
    for row in rows:
        lines.append(_line(row, label_width, start, total))
    return lines


def render(traces: Iterable[list[SpanRecord]]) -> str:
    return "\n\n".join("\n".join(render_trace(spans)) for spans in traces)


def _read(path: Path) -> Iterator[SpanRecord]:
    try:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if (record := record_from_json(line)) is not None:
                    yield record
    except FileNotFoundError:
        return


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
    for top in sorted(tops, key=_start):
        yield from _walk(top, 0, children, seen, orphan=bool(top["parent_span_id"]))
    # Spans on a parent cycle are unreachable from any top: still show them, flagged.
    for span in sorted(spans, key=_start):
        if span["span_id"] not in seen:
            yield from _walk(span, 0, children, seen, orphan=True)


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


def _header(spans: list[SpanRecord], rows: list[_Row], total_ns: int) -> str:
    roots = [row.span for row in rows if row.depth == 0 and not row.orphan]
    root = roots[0] if roots else rows[0].span
    services = ", ".join(sorted({s["service"] for s in spans}))
    orphans = sum(row.orphan for row in rows)
    parts = [
        f"trace {spans[0]['trace_id']}",
        f"{_titled(root)} ({root['service']})" if roots else "(no root span)",
        f"{_ms(total_ns)} ms",
        f"{len(spans)} span{'s' if len(spans) != 1 else ''}",
        f"services: {services}",
    ]
    if orphans:
        parts.append(f"{orphans} orphan{'s' if orphans != 1 else ''}")
    return "  ".join(parts)


def _label(row: _Row) -> str:
    marker = "! " if row.orphan else ""
    return f"{'  ' * row.depth}{marker}{row.span['service']}: {row.span['name']}"


def _line(row: _Row, label_width: int, start: int, total: int) -> str:
    span = row.span
    label = _label(row)
    if len(label) > label_width:
        label = label[: label_width - 1] + "…"
    duration = _ms(span["end_ns"] - span["start_ns"])
    line = (
        f"  {label:<{label_width}}  {span['kind'].lower():<8} {duration:>10} ms  "
        f"{span['status']:<5} |{_bar(span, start, total)}|"
    )
    if detail := _detail(span):
        line += f"  {detail}"
    if row.orphan and span["parent_span_id"]:
        line += f"  orphan: parent {span['parent_span_id']} missing"
    if span["status"] == "ERROR" and span["status_message"]:
        line += f"  {span['status_message'][:80]}"
    return line


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
    ):
        parts.append(urlsplit(str(url)).path or str(url))
    status = attributes.get("http.status_code") or attributes.get("http.response.status_code")
    if status not in (None, "", "0", 0):
        parts.append(f"-> {status}")
    if (grpc_code := attributes.get("rpc.grpc.status_code")) is not None:
        parts.append(f"grpc {grpc_code}")
    if reason := attributes.get("error.reason") or attributes.get("error.type"):
        parts.append(f"({reason})")
    return " ".join(parts)


def _bar(span: SpanRecord, start: int, total: int) -> str:
    first = min(int((span["start_ns"] - start) / total * BAR_WIDTH), BAR_WIDTH - 1)
    last = max(first + 1, math.ceil((span["end_ns"] - start) / total * BAR_WIDTH))
    last = min(last, BAR_WIDTH)
    return " " * first + "█" * (last - first) + " " * (BAR_WIDTH - last)


def _ms(nanoseconds: int) -> str:
    return f"{nanoseconds / 1e6:.2f}"
