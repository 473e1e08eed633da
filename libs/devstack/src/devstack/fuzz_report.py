"""What a schemathesis run did, read from its NDJSON event report.

Every request the run sent is counted against its operation with the status it got. A server
error is a 5xx other than 503 and 504: those two mean a dependency (a model provider, a
database) did not answer in time or at all, which the API reports honestly; every other 5xx
is a bug. 503s and 504s are counted apart so a run full of them still shows.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEPENDENCY_STATUSES = (503, 504)
_SAMPLES = 3  # requests kept per operation and kind of failure, to reproduce them


@dataclass(frozen=True)
class Exchange:
    """One request and the answer it got, as much as a report needs to reproduce it."""

    method: str
    uri: str
    request_body: str
    status: int
    response_body: str


@dataclass
class OperationStats:
    label: str  # "GET /v1/patients/{id}"
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    phases: Counter[str] = field(default_factory=Counter)
    server_errors: list[Exchange] = field(default_factory=list)
    unavailable: list[Exchange] = field(default_factory=list)

    @property
    def server_error_count(self) -> int:
        return sum(n for status, n in self.statuses.items() if is_server_error(status))

    @property
    def unavailable_count(self) -> int:
        return sum(self.statuses[status] for status in DEPENDENCY_STATUSES)


def is_server_error(status: int) -> bool:
    return status >= 500 and status not in DEPENDENCY_STATUSES


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                event: dict[str, Any] = json.loads(line)
                yield event


UNDOCUMENTED = "(methods the document does not list, on its paths)"


@dataclass
class RunResult:
    """Per operation label, the requests sent and what they got back; and the run's errors."""

    stats: dict[str, OperationStats]
    errors: list[str]  # schemathesis' own: a crashing hook, a request that never got an answer
    seed: int | None = None  # the one schemathesis used: `--seed` repeats the run


def read_run(events: Iterable[dict[str, Any]], documented: set[str]) -> RunResult:
    """Count each request against its documented operation, or against UNDOCUMENTED.

    Schemathesis also probes the methods a path does not document (405/404 expected).
    """
    stats: dict[str, OperationStats] = {}
    errors: list[str] = []
    seed = None
    for event in events:
        seed = event["Initialize"].get("seed") if "Initialize" in event else seed
        if failure := event.get("NonFatalError") or event.get("FatalError"):
            value = failure.get("value", {})
            errors.append(
                f"{failure.get('label', '')}: {value.get('type')}: {value.get('message')}"
            )
        scenario = event.get("ScenarioFinished")
        if not scenario or "interactions" not in scenario.get("recorder", {}):
            continue
        recorder = scenario["recorder"]
        for case_id, interaction in recorder["interactions"].items():
            response = interaction.get("response")
            case = recorder["cases"].get(case_id, {}).get("value")
            if response is None or case is None:
                continue  # no answer: schemathesis reports a network error itself
            label = f"{case['method']} {case['path']}"
            label = label if label in documented else UNDOCUMENTED
            entry = stats.setdefault(label, OperationStats(label))
            _count(entry, scenario["phase"], interaction["request"], response)
    ordered = dict(sorted(stats.items(), key=lambda item: _sort_key(item[0])))
    return RunResult(ordered, errors, seed)


def _count(
    entry: OperationStats, phase: str, request: dict[str, Any], response: dict[str, Any]
) -> None:
    status = int(response["status_code"])
    entry.cases += 1
    entry.statuses[status] += 1
    entry.phases[phase] += 1
    if is_server_error(status) and len(entry.server_errors) < _SAMPLES:
        entry.server_errors.append(_exchange(request, response))
    elif status in DEPENDENCY_STATUSES and len(entry.unavailable) < _SAMPLES:
        entry.unavailable.append(_exchange(request, response))


def _exchange(request: dict[str, Any], response: dict[str, Any]) -> Exchange:
    return Exchange(
        method=request["method"],
        uri=request["uri"],
        request_body=_text(request.get("body")),
        status=int(response["status_code"]),
        response_body=_text(response.get("content")),
    )


def _text(body: Any, limit: int = 500) -> str:
    if body is None:
        return ""
    if isinstance(body, dict) and "$base64" in body:
        raw = base64.b64decode(body["$base64"]).decode("utf-8", errors="replace")
    else:
        raw = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return raw[:limit]


def _sort_key(label: str) -> tuple[str, str]:
    method, _, path = label.partition(" ")
    return path, method


def documented_operations(document: dict[str, Any]) -> dict[str, str]:
    """Each operation label of an OpenAPI document and its class: public, read or write.

    public needs no token; read is GET; write is anything else.
    """
    classes: dict[str, str] = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            label = f"{method.upper()} {path}"
            public = operation.get("security") == []
            classes[label] = "public" if public else "read" if method == "get" else "write"
    return classes
