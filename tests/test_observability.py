"""What an operator relies on, through the real stack: one trace per request from the edge
to the database (queued jobs included), JSON logs joined to traces, metrics that move
with traffic, and no patient data in any span or log line."""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from rest_answers import ok
from stack_harness import Account, Accounts, Stack

Span = dict[str, Any]

SUMMARY_SERVICE = "medstation.summary.v1.SummaryService"
PATIENT_SERVICE = "medstation.patient.v1.PatientRecordService"
# Long enough for the batch exporters (200 ms under the harness) and Envoy's flush (5 s).
_TRACE_WAIT_SECONDS = 30
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{.*\})? (?P<value>\S+)$")


@pytest.fixture(scope="session")
def summary_and_chat(stack: Stack) -> None:
    missing = {"patient-record", "summary", "chat"} - stack.services.keys()
    if missing or "summary-worker" not in stack.workers:
        pytest.skip(f"services not in this checkout: {sorted(missing)}")


pytestmark = pytest.mark.usefixtures("summary_and_chat")


# ---- helpers: the REST API ----


def _traceparent() -> tuple[str, str, dict[str, str]]:
    """A new trace as a caller starts it: (trace id, the caller's span id, headers)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, {"traceparent": f"00-{trace_id}-{span_id}-01"}


def _patient_with_note(api: httpx.Client, account: Account, name: str, note: str) -> str:
    patient = ok(
        api.post(
            "/v1/patients",
            json={"name": name, "date_of_birth": "1961-04-02", "sex": "female"},
            headers=account.headers,
        )
    )
    ok(
        api.post(
            f"/v1/patients/{patient['id']}/notes", json={"content": note}, headers=account.headers
        )
    )
    return str(patient["id"])


def _soap(marker: str) -> str:
    return (
        f"S: {marker} reports a dry cough for two weeks.\n"
        "O: T 37.2 C, SpO2 97 %, clear chest.\n"
        "A: Post-viral cough.\n"
        "P: Honey, review in 3 weeks."
    )


# ---- helpers: the trace sink's file ----


def _spans(stack: Stack) -> list[Span]:
    if not stack.traces_path.exists():
        return []
    return [json.loads(line) for line in stack.traces_path.read_text().splitlines() if line]


def _orphans(spans: list[Span], caller_span_id: str) -> list[Span]:
    """Spans whose parent never arrived (the caller's own span from traceparent excepted)."""
    known = {span["span_id"] for span in spans} | {caller_span_id}
    return [span for span in spans if span["parent_span_id"] not in known]


def _wait_for_trace(
    stack: Stack, trace_id: str, caller_span_id: str, complete: Callable[[list[Span]], bool]
) -> list[Span]:
    """The trace's spans once `complete` holds and no span lacks its parent."""
    deadline = time.monotonic() + _TRACE_WAIT_SECONDS
    spans: list[Span] = []
    while time.monotonic() < deadline:
        spans = [span for span in _spans(stack) if span["trace_id"] == trace_id]
        if complete(spans) and not _orphans(spans, caller_span_id):
            return spans
        time.sleep(0.25)
    return spans


def _services(spans: list[Span]) -> set[str]:
    return {span["service"] for span in spans}


def _sql(spans: list[Span], service: str) -> list[Span]:
    return [
        span
        for span in spans
        if span["service"] == service and span["attributes"].get("db.system") == "postgresql"
    ]


def _rpc(spans: list[Span], service: str, kind: str, method: str) -> list[Span]:
    return [
        span
        for span in spans
        if span["service"] == service and span["kind"] == kind and span["name"] == method
    ]


# ---- helpers: logs and metrics ----


def _log_lines(stack: Stack, key: str) -> list[str]:
    processes = {**stack.services, **stack.workers}
    return processes[key].log_path.read_text(errors="replace").splitlines()


def _metrics(port: str | int) -> dict[tuple[str, str], float]:
    """Every sample of a Prometheus endpoint: (name, labels text) -> value."""
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status_code == 200, response.text
    return _samples(response.text)


def _samples(text: str) -> dict[tuple[str, str], float]:
    samples: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and (match := _SAMPLE.match(line)):
            samples[(match["name"], match["labels"] or "")] = float(match["value"])
    return samples


def _total(samples: dict[tuple[str, str], float], name: str, *label_parts: str) -> float:
    return sum(
        value
        for (sample, labels), value in samples.items()
        if sample == name and all(part in labels for part in label_parts)
    )


def _metrics_port(stack: Stack, key: str) -> str:
    processes = {**stack.services, **stack.workers}
    return processes[key].env["MEDSTATION_METRICS_PORT"]


# ---- traces ----


def test_get_summary_is_one_trace_from_the_gateway_to_both_databases(
    api: httpx.Client, accounts: Accounts, stack: Stack
) -> None:
    doctor = accounts.clinician()
    patient_id = _patient_with_note(api, doctor, "Ines Traced", _soap("Ines"))
    trace_id, caller, headers = _traceparent()

    ok(api.get(f"/v1/patients/{patient_id}/summary", headers={**doctor.headers, **headers}))

    def complete(spans: list[Span]) -> bool:
        return (
            {"gateway", "summary", "patient-record"} <= _services(spans)
            and bool(_sql(spans, "summary"))
            and bool(_sql(spans, "patient-record"))
        )

    spans = _wait_for_trace(stack, trace_id, caller, complete)
    assert complete(spans), _services(spans)
    assert _orphans(spans, caller) == []
    gateway = {span["kind"] for span in spans if span["service"] == "gateway"}
    assert {"SERVER", "CLIENT"} <= gateway  # Envoy's ingress and its upstream call
    get_summary = f"/{SUMMARY_SERVICE}/GetSummary"
    [server] = _rpc(spans, "summary", "SERVER", get_summary)
    assert server["attributes"]["rpc.system"] == "grpc"
    assert server["attributes"]["rpc.service"] == SUMMARY_SERVICE
    assert server["attributes"]["rpc.method"] == "GetSummary"
    # summary -> patient-record: a client span in one, the server span under it in the other.
    clients = [s for s in spans if s["service"] == "summary" and s["kind"] == "CLIENT"]
    calls = [s for s in clients if s["name"].startswith(f"/{PATIENT_SERVICE}/")]
    assert calls, [s["name"] for s in clients]
    served = [s for s in spans if s["service"] == "patient-record" and s["kind"] == "SERVER"]
    for call in calls:
        assert call["attributes"]["rpc.service"] == PATIENT_SERVICE
        assert [s for s in served if s["parent_span_id"] == call["span_id"]], call["name"]


def _lone_client_spans(spans: list[Span]) -> list[Span]:
    """Database or Redis calls that no request or job caused: each is a trace of its own."""
    return [
        s
        for s in spans
        if not s["parent_span_id"]
        and s["kind"] == "CLIENT"
        and s["attributes"].get("db.system") in ("postgresql", "redis")
    ]


def test_health_checks_and_background_loops_leave_no_traces_of_their_own(stack: Stack) -> None:
    # Envoy health-checks every upstream each second; the outbox relay polls five times a
    # second, the worker's loops block on Redis each second and reconcile every 5 s.
    started = time.time_ns()
    time.sleep(6)
    spans = [span for span in _spans(stack) if span["start_ns"] >= started]

    assert not [s for s in spans if "grpc.health" in s["name"]]
    assert _lone_client_spans(spans) == [], _lone_client_spans(spans)[:5]


def test_start_up_work_is_one_trace_per_process(stack: Stack) -> None:
    # The user service creates its signing key and the admin account at start: without a
    # span around it, each statement is a one-span trace of its own.
    assert _lone_client_spans(_spans(stack)) == []


def test_a_summary_job_runs_in_the_trace_of_the_request_that_queued_it(
    api: httpx.Client, accounts: Accounts, stack: Stack
) -> None:
    doctor = accounts.clinician()
    patient_id = _patient_with_note(api, doctor, "Jonas Queued", _soap("Jonas"))
    trace_id, caller, headers = _traceparent()

    job = ok(
        api.post(
            f"/v1/patients/{patient_id}/summary-jobs",
            json={},
            headers={**doctor.headers, **headers},
        )
    )
    deadline = time.monotonic() + 60
    while job["state"] in ("QUEUED", "RUNNING") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = ok(api.get(f"/v1/summary-jobs/{job['id']}", headers=doctor.headers))
    assert job["state"] == "SUCCEEDED", job

    def worker_joined(spans: list[Span]) -> bool:
        return "summary-worker" in _services(spans) and bool(_sql(spans, "summary-worker"))

    spans = _wait_for_trace(stack, trace_id, caller, worker_joined)
    linked = [
        span
        for span in _spans(stack)
        if span["service"] == "summary-worker"
        and any(link["trace_id"] == trace_id for link in span.get("links", []))
    ]
    assert worker_joined(spans) or linked, _services(spans)
    assert _orphans(spans, caller) == []
    assert {"gateway", "summary"} <= _services(spans)


# ---- logs ----


def test_every_log_line_is_json_and_names_its_trace_and_rpc(
    api: httpx.Client, accounts: Accounts, stack: Stack
) -> None:
    doctor = accounts.clinician()
    trace_id, _caller, headers = _traceparent()
    response = api.get(
        f"/v1/patients/{uuid.uuid4()}/summary", headers={**doctor.headers, **headers}
    )
    assert response.status_code == 404, response.text
    time.sleep(0.5)

    for key in [*stack.services, *stack.workers]:
        for line in _log_lines(stack, key):
            try:
                entry = json.loads(line)
            except ValueError:
                pytest.fail(f"{key} logged a line that is not JSON: {line[:300]}")
            assert {"timestamp", "level", "service", "message"} <= entry.keys(), line
            assert entry["service"] == key, line
    finished = [
        json.loads(line)
        for line in _log_lines(stack, "summary")
        if trace_id in line and '"rpc finished"' in line
    ]
    assert finished, "no log line of the summary service names the request's trace"
    [entry] = finished
    assert entry["rpc"] == f"/{SUMMARY_SERVICE}/GetSummary"
    assert entry["grpc_code"] == "NOT_FOUND"
    assert entry["reason"]  # the stable reason of the domain error
    assert len(entry["span_id"]) == 16
    assert entry["level"] in ("INFO", "WARNING")


# ---- patient data ----


def test_no_patient_data_reaches_any_span_or_log_line(
    api: httpx.Client, accounts: Accounts, stack: Stack
) -> None:
    marker = f"Zephyrine{secrets.token_hex(5)}"
    doctor = accounts.clinician()
    patient_id = _patient_with_note(api, doctor, f"{marker} Quill", _soap(marker))
    # A search by name (Envoy's URL tag), a duplicate MRN (PostgreSQL quotes the key in
    # its error), a summary (the note goes to the model), a job (through the worker).
    api.get("/v1/patients", params={"query": marker}, headers=doctor.headers)
    for _ in range(2):
        api.post(
            "/v1/patients",
            json={"name": marker, "date_of_birth": "1961-04-02", "sex": "male", "mrn": marker},
            headers=doctor.headers,
        )
    ok(api.get(f"/v1/patients/{patient_id}/summary", headers=doctor.headers))
    ok(api.post(f"/v1/patients/{patient_id}/summary-jobs", json={}, headers=doctor.headers))
    models = ok(api.get("/v1/models", headers=doctor.headers))["models"]
    [offline] = [model for model in models if model["name"] == "medstation-offline"]
    chat = ok(
        api.post(
            "/v1/chats",
            json={"title": "Follow-up", "model_id": offline["id"], "patient_id": patient_id},
            headers=doctor.headers,
        )
    )
    ok(
        api.post(
            f"/v1/chats/{chat['id']}/messages",
            json={"content": f"Did {marker} improve after the honey?"},
            headers=doctor.headers,
        )
    )
    api.get("/v1/messages:search", params={"query": marker}, headers=doctor.headers)
    # The last request's trace complete means every exporter has flushed what came before.
    trace_id, caller, headers = _traceparent()
    ok(api.get(f"/v1/chats/{chat['id']}/messages", headers={**doctor.headers, **headers}))
    _wait_for_trace(stack, trace_id, caller, lambda spans: {"gateway", "chat"} <= _services(spans))
    time.sleep(6)  # Envoy flushes its spans every 5 s

    assert stack.traces_path.read_text().count(marker) == 0
    for log in sorted(stack.run_dir.glob("*.log")):
        assert marker not in log.read_text(errors="replace"), f"patient data in {log.name}"


# ---- metrics ----


def test_service_metrics_answer_and_count_each_rpc_by_code(
    api: httpx.Client, accounts: Accounts, stack: Stack
) -> None:
    doctor = accounts.clinician()
    summary_port = _metrics_port(stack, "summary")
    patient_port = _metrics_port(stack, "patient-record")
    patient_before = _metrics(patient_port)
    patient_id = _patient_with_note(api, doctor, "Mara Counted", _soap("Mara"))
    before = _metrics(summary_port)

    ok(api.get(f"/v1/patients/{patient_id}/summary", headers=doctor.headers))
    unknown = api.get(f"/v1/summary-jobs/{uuid.uuid4()}", headers=doctor.headers)
    assert unknown.status_code == 404, unknown.text

    after = _metrics(summary_port)
    handled = "grpc_server_handled_total"
    for code in ("OK", "NOT_FOUND"):
        labels = ('grpc_service="medstation.summary.v1.SummaryService"', f'grpc_code="{code}"')
        assert _total(after, handled, *labels) > _total(before, handled, *labels), code
    latency = "grpc_server_handling_seconds_count"
    method = 'grpc_method="GetSummary"'
    assert _total(after, latency, method) > _total(before, latency, method)
    patient = _metrics(patient_port)
    # The note went out in a group-committed insert, the summary's chart read in a
    # group-committed GetPatient: each is a statement the histogram counted.
    statements = "group_commit_batch_items_count"
    for name in ('name="note_inserts"', 'name="patient_reads"'):
        assert _total(patient, statements, name) > _total(patient_before, statements, name), name
    assert _total(patient, "db_pool_size", 'pool="medstation_patient_statements"') > 0
    assert any(name == "outbox_unpublished_events" for name, _ in patient)
    for key in [*stack.services, *stack.workers]:
        assert _metrics(_metrics_port(stack, key)), key


def test_the_worker_reports_its_queue(stack: Stack) -> None:
    samples = _metrics(_metrics_port(stack, "summary-worker"))

    assert ("summary_jobs_queued", "") in samples
    assert ("summary_job_oldest_queued_age_seconds", "") in samples
    assert any(name == "summary_jobs_processed_total" for name, _ in samples)


def test_envoy_stats_are_scrapeable_on_the_admin_port(accounts: Accounts, stack: Stack) -> None:
    def upstream_requests() -> float:
        response = httpx.get(f"{stack.envoy_admin_url}/stats/prometheus", timeout=5)
        assert response.status_code == 200
        return _total(
            _samples(response.text), "envoy_cluster_upstream_rq_total", 'envoy_cluster_name="user"'
        )

    before = upstream_requests()
    accounts.clinician()

    assert upstream_requests() > before


def test_services_report_their_connection_pools_and_model_calls(
    api: httpx.Client, accounts: Accounts, stack: Stack
) -> None:
    doctor = accounts.clinician()
    patient_id = _patient_with_note(api, doctor, "Pia Pooled", _soap("Pia"))
    ok(api.get(f"/v1/patients/{patient_id}/summary", headers=doctor.headers))

    for key in ("user", "patient-record", "summary", "chat", "summary-worker"):
        samples = _metrics(_metrics_port(stack, key))
        assert _total(samples, "db_pool_size") > 0, key
    summary = _metrics(_metrics_port(stack, "summary"))
    assert _total(summary, "medstation_llm_request_seconds_count", 'provider="offline"') > 0


def _lost_parents(spans: list[Span]) -> list[Span]:
    """Spans whose parent is in no trace: a trace's first span, a server span, is excepted
    (its parent is the caller's, who sent a traceparent)."""
    known = {span["span_id"] for span in spans}
    first: dict[str, Span] = {}
    for span in spans:
        if span["trace_id"] not in first or span["start_ns"] < first[span["trace_id"]]["start_ns"]:
            first[span["trace_id"]] = span
    return [
        span
        for span in spans
        if span["parent_span_id"]
        and span["parent_span_id"] not in known
        and not (span["kind"] == "SERVER" and first[span["trace_id"]] is span)
    ]


def test_no_span_of_the_whole_run_lacks_its_parent(stack: Stack) -> None:
    # Parents end after their children, so they may still sit in an exporter's batch.
    deadline = time.monotonic() + _TRACE_WAIT_SECONDS
    lost = _lost_parents(_spans(stack))
    while lost and time.monotonic() < deadline:
        time.sleep(0.5)
        lost = _lost_parents(_spans(stack))

    assert lost == [], [(s["service"], s["name"], s["parent_span_id"]) for s in lost[:10]]
