"""What operators rely on: /healthz follows the services, and requests are traced."""

from __future__ import annotations

import json
import time

import httpx
from stack_harness import Accounts, Stack, wait_healthz


def test_healthz_is_503_while_the_user_service_is_down(stack: Stack) -> None:
    user = stack.services["user"]
    wait_healthz(stack.gateway_url, 200)
    # SIGTERM, not SIGKILL: the stack is shared, and a killed process takes the spans still
    # in its export batch with it, leaving orphans that the whole-run trace check would
    # blame on tracing. Crashes are the chaos suite's business, on a stack of its own.
    user.stop()
    try:
        wait_healthz(stack.gateway_url, 503)
        body = httpx.get(f"{stack.gateway_url}/v1/users/me", timeout=5)
        assert body.status_code in (401, 503)  # never a hang, never a stack trace
    finally:
        user.start()
    wait_healthz(stack.gateway_url, 200)


def _spans(stack: Stack) -> list[dict[str, object]]:
    if not stack.traces_path.exists():
        return []
    return [json.loads(line) for line in stack.traces_path.read_text().splitlines() if line]


def test_a_rest_call_is_one_trace_from_gateway_to_database(
    api: httpx.Client, accounts: Accounts, stack: Stack
) -> None:
    account = accounts.clinician()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"
    response = api.get("/v1/users/me", headers={**account.headers, "traceparent": traceparent})
    assert response.status_code == 200
    # Spans arrive in batches from three processes; wait until the trace is complete.
    deadline = time.monotonic() + 20
    spans: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        spans = [span for span in _spans(stack) if span["trace_id"] == trace_id]
        if _complete(spans, client_span_id="00f067aa0ba902b7"):
            break
        time.sleep(0.2)
    services = {span["service"] for span in spans}
    assert {"gateway", "user"} <= services, spans
    # Envoy's ingress span and its upstream (client) span, named by the gRPC method.
    gateway_kinds = {span["kind"] for span in spans if span["service"] == "gateway"}
    assert gateway_kinds >= {"SERVER", "CLIENT"}, spans
    assert any(
        span["service"] == "user" and span["name"] == "/medstation.user.v1.UserService/GetMe"
        for span in spans
    ), spans
    assert any(str(span["name"]).startswith("SELECT") for span in spans), spans
    assert _orphans(spans, client_span_id="00f067aa0ba902b7") == []


def _orphans(spans: list[dict[str, object]], client_span_id: str) -> list[dict[str, object]]:
    """Spans whose parent is missing (the client's own span from traceparent excepted)."""
    span_ids = {span["span_id"] for span in spans} | {client_span_id}
    return [span for span in spans if span["parent_span_id"] not in span_ids]


def _complete(spans: list[dict[str, object]], client_span_id: str) -> bool:
    services = {span["service"] for span in spans}
    has_sql = any(str(span["name"]).startswith("SELECT") for span in spans)
    return {"gateway", "user"} <= services and has_sql and not _orphans(spans, client_span_id)
