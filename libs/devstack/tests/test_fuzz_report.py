"""Reading a schemathesis NDJSON report: what counts as a server error, and the Markdown."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from devstack import fuzz_markdown, fuzz_report
from devstack.fuzz import FuzzRun, FuzzSettings
from devstack.fuzz_report import UNDOCUMENTED, RunResult

DOCUMENT: dict[str, Any] = {
    "paths": {
        "/v1/patients/{id}": {"get": {}, "delete": {}},
        "/v1/auth/login": {"post": {"security": []}},
    }
}


def interaction(method: str, path: str, status: int, body: str = "") -> tuple[Any, Any]:
    case = {"value": {"method": method, "path": path}}
    response = {
        "status_code": status,
        "content": {"$base64": base64.b64encode(body.encode()).decode()},
    }
    request = {"method": method, "uri": f"http://gw{path}", "body": {"name": "x"}}
    return case, {"request": request, "response": response}


def scenario(phase: str, *exchanges: tuple[Any, Any]) -> dict[str, Any]:
    cases = {f"c{n}": case for n, (case, _) in enumerate(exchanges)}
    interactions = {f"c{n}": exchange for n, (_, exchange) in enumerate(exchanges)}
    recorder = {"label": "x", "cases": cases, "interactions": interactions}
    return {"ScenarioFinished": {"phase": phase, "recorder": recorder}}


EVENTS = [
    {"Initialize": {"seed": 42}},
    scenario(
        "fuzzing",
        interaction("GET", "/v1/patients/{id}", 200),
        interaction("GET", "/v1/patients/{id}", 500, '{"code":13,"message":"boom"}'),
        interaction("GET", "/v1/patients/{id}", 503, '{"code":14}'),
        interaction("GET", "/v1/patients/{id}", 504),
    ),
    scenario(
        "coverage",
        interaction("DELETE", "/v1/patients/{id}", 404),
        interaction("TRACE", "/v1/patients/{id}", 404),
        interaction("POST", "/v1/auth/login", 502),
    ),
    {"ScenarioFinished": {"phase": "examples", "recorder": {"label": "skipped"}}},
    {"NonFatalError": {"label": "GET /x", "value": {"type": "KeyError", "message": "'id'"}}},
]


@pytest.fixture
def result() -> RunResult:
    documented = set(fuzz_report.documented_operations(DOCUMENT))
    return fuzz_report.read_run(EVENTS, documented)


def test_every_request_counts_against_its_operation(result: RunResult) -> None:
    patient = result.stats["GET /v1/patients/{id}"]

    assert patient.cases == 4
    assert patient.statuses == {200: 1, 500: 1, 503: 1, 504: 1}
    assert patient.phases == {"fuzzing": 4}
    assert result.stats["DELETE /v1/patients/{id}"].cases == 1


def test_only_5xx_other_than_503_and_504_are_server_errors(result: RunResult) -> None:
    patient = result.stats["GET /v1/patients/{id}"]
    login = result.stats["POST /v1/auth/login"]

    assert (patient.server_error_count, patient.unavailable_count) == (1, 2)
    [sample] = patient.server_errors
    assert (sample.status, sample.response_body) == (500, '{"code":13,"message":"boom"}')
    assert sample.request_body == '{"name": "x"}'
    assert login.server_error_count == 1  # 502: the gateway lost the service mid-call


def test_methods_the_document_does_not_list_are_counted_apart(result: RunResult) -> None:
    assert result.stats[UNDOCUMENTED].statuses == {404: 1}


def test_schemathesis_errors_and_the_seed_are_kept(result: RunResult) -> None:
    assert result.errors == ["GET /x: KeyError: 'id'"]
    assert result.seed == 42


def test_operation_classes_follow_the_document() -> None:
    assert fuzz_report.documented_operations(DOCUMENT) == {
        "GET /v1/patients/{id}": "read",
        "DELETE /v1/patients/{id}": "write",
        "POST /v1/auth/login": "public",
    }


def test_events_are_read_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(json.dumps(event) for event in EVENTS) + "\n\n", encoding="utf-8")

    assert list(fuzz_report.read_events(path)) == EVENTS


def run(result: RunResult) -> FuzzRun:
    return FuzzRun("clinician", 1, 12.0, result, Path("clinician.log"))


def test_a_run_fails_on_server_errors_and_on_schemathesis_errors(result: RunResult) -> None:
    clean = RunResult({"GET /v1/patients/{id}": result.stats["DELETE /v1/patients/{id}"]}, [])

    assert run(result).failures() == ["2 server errors", "GET /x: KeyError: 'id'"]
    assert run(clean).failures() == []
    assert run(RunResult({}, [])).failures() == ["no request was sent"]


def test_the_markdown_gives_totals_per_class_and_samples(result: RunResult) -> None:
    classes = fuzz_report.documented_operations(DOCUMENT)
    settings = FuzzSettings("http://gw", examples=7, seed=3)

    text = fuzz_markdown.render([run(result)], settings, classes)

    assert text.startswith(fuzz_markdown.START)
    assert text.rstrip().endswith(fuzz_markdown.END)
    assert "**2 server errors**" in text
    assert "seeds clinician `42`" in text
    assert "| clinician | read | 1 | 4 | 1 | 0 | 2 | 1 |" in text
    assert "| clinician | public | 1 | 1 | 0 | 0 | 0 | 1 |" in text
    assert "server error, clinician, `GET /v1/patients/{id}`" in text


def test_a_new_section_replaces_the_old_and_keeps_the_rest() -> None:
    old = f"{fuzz_markdown.START}\nold numbers\n{fuzz_markdown.END}\n"
    document = f"# Fuzzing\n\nprose\n\n{old}\nmore prose\n"
    new = f"{fuzz_markdown.START}\nnew numbers\n{fuzz_markdown.END}\n"

    replaced = fuzz_markdown.replace_section(document, new)

    assert replaced == f"# Fuzzing\n\nprose\n\n{new}\nmore prose\n"
    assert fuzz_markdown.replace_section("# Fuzzing\n", new) == f"# Fuzzing\n\n{new}"
