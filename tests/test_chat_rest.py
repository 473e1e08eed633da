"""ChatService through the real gateway: what a clinician's app sees over REST, streamed
replies included (newline-delimited JSON)."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx
import pytest
from rest_answers import ok, reason, violations
from stack_harness import Account, Accounts, Stack

pytestmark = pytest.mark.usefixtures("chat_service")

OFFLINE_MODEL = "medstation-offline"


@pytest.fixture(scope="session")
def chat_service(stack: Stack) -> None:
    if "chat" not in stack.services:
        pytest.skip("services/chat is not in this checkout")


def _offline_model_id(api: httpx.Client, account: Account) -> str:
    models = ok(api.get("/v1/models", params={"page_size": 100}, headers=account.headers))
    [model] = [m for m in models["models"] if m["name"] == OFFLINE_MODEL]
    return str(model["id"])


def _create_chat(api: httpx.Client, account: Account, **fields: Any) -> dict[str, Any]:
    body = {"title": "Questions", "model_id": _offline_model_id(api, account), **fields}
    return ok(api.post("/v1/chats", json=body, headers=account.headers))


def _send(api: httpx.Client, account: Account, chat_id: str, content: str) -> dict[str, Any]:
    return ok(
        api.post(
            f"/v1/chats/{chat_id}/messages", json={"content": content}, headers=account.headers
        )
    )


def test_a_clinician_holds_a_conversation_over_rest(api: httpx.Client, accounts: Accounts) -> None:
    doctor = accounts.clinician()
    chat = _create_chat(api, doctor, title="Renal dosing")
    word = f"zyq{secrets.token_hex(4)}"

    first = _send(api, doctor, chat["id"], f"Is {word} cleared by the kidneys?")
    second = _send(api, doctor, chat["id"], "And in dialysis?")

    for exchange in (first, second):
        assert exchange["user_message"]["role"] == "user"
        assert exchange["assistant_message"]["role"] == "assistant"
        assert exchange["assistant_message"]["content"]
        assert exchange["assistant_message"]["token_count"] > 0
    listed = ok(api.get(f"/v1/chats/{chat['id']}/messages", headers=doctor.headers))
    assert [m["id"] for m in listed["messages"]] == [
        first["user_message"]["id"],
        first["assistant_message"]["id"],
        second["user_message"]["id"],
        second["assistant_message"]["id"],
    ]
    found = ok(api.get("/v1/messages:search", params={"query": word}, headers=doctor.headers))
    assert first["user_message"]["id"] in [m["id"] for m in found["messages"]]
    renamed = ok(
        api.patch(
            f"/v1/chats/{chat['id']}",
            params={"update_mask": "title"},
            json={"title": "Renal dosing of new drugs"},
            headers=doctor.headers,
        )
    )
    assert renamed["title"] == "Renal dosing of new drugs"
    chats = ok(api.get("/v1/chats", headers=doctor.headers))
    assert [c["id"] for c in chats["chats"]] == [chat["id"]]

    assert api.delete(f"/v1/chats/{chat['id']}", headers=doctor.headers).status_code == 200
    assert api.get(f"/v1/chats/{chat['id']}", headers=doctor.headers).status_code == 404
    after = ok(api.get("/v1/messages:search", params={"query": word}, headers=doctor.headers))
    assert after["messages"] == []


def test_a_reply_streams_as_newline_delimited_json(api: httpx.Client, accounts: Accounts) -> None:
    doctor = accounts.clinician()
    chat = _create_chat(api, doctor)

    with api.stream(
        "POST",
        f"/v1/chats/{chat['id']}/messages:stream",
        json={"content": "What can you do?"},
        headers=doctor.headers,
    ) as response:
        assert response.status_code == 200
        events = [json.loads(line) for line in response.iter_lines() if line.strip()]

    *chunks, last = events
    assert chunks
    assert all(set(event) == {"delta"} for event in chunks)
    completed = last["completed"]
    assert "".join(event["delta"] for event in chunks) == completed["assistant_message"]["content"]
    assert completed["user_message"]["content"] == "What can you do?"
    listed = ok(api.get(f"/v1/chats/{chat['id']}/messages", headers=doctor.headers))
    assert [m["id"] for m in listed["messages"]] == [
        completed["user_message"]["id"],
        completed["assistant_message"]["id"],
    ]


def test_another_clinicians_chat_is_404(api: httpx.Client, accounts: Accounts) -> None:
    doctor, other = accounts.clinician(), accounts.clinician()
    chat = _create_chat(api, doctor)
    _send(api, doctor, chat["id"], "private question")

    paths: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/v1/chats/{chat['id']}", None),
        ("PATCH", f"/v1/chats/{chat['id']}", {"title": "mine"}),
        ("GET", f"/v1/chats/{chat['id']}/messages", None),
        ("POST", f"/v1/chats/{chat['id']}/messages", {"content": "hi"}),
        ("POST", f"/v1/chats/{chat['id']}/messages:stream", {"content": "hi"}),
        ("DELETE", f"/v1/chats/{chat['id']}", None),
    ]
    for method, path, body in paths:
        response = api.request(method, path, json=body, headers=other.headers)
        assert response.status_code == 404, (method, path, response.text)
        assert reason(response) == "CHAT_NOT_FOUND"
    assert ok(api.get(f"/v1/chats/{chat['id']}", headers=doctor.headers))["id"] == chat["id"]


def test_bad_input_is_a_400_naming_the_field(api: httpx.Client, accounts: Accounts) -> None:
    doctor = accounts.clinician()
    chat = _create_chat(api, doctor)

    empty = api.post(
        f"/v1/chats/{chat['id']}/messages", json={"content": ""}, headers=doctor.headers
    )
    unknown_model = api.post(
        "/v1/chats",
        json={"model_id": "00000000-0000-4000-8000-000000000000"},
        headers=doctor.headers,
    )
    # %20, not httpx's "+": the gateway reads query strings by RFC 3986, where "+" is a plus.
    blank_query = api.get("/v1/messages:search?query=%20%20", headers=doctor.headers)

    assert (empty.status_code, violations(empty)) == (400, {"content"})
    assert (unknown_model.status_code, violations(unknown_model)) == (400, {"model_id"})
    assert (blank_query.status_code, violations(blank_query)) == (400, {"query"})


def test_only_admins_add_models(api: httpx.Client, accounts: Accounts) -> None:
    doctor, admin = accounts.clinician(), accounts.admin()
    body = {"name": f"llama-{secrets.token_hex(4)}", "provider": "ollama", "enabled": True}

    refused = api.post("/v1/models", json=body, headers=doctor.headers)
    created = api.post("/v1/models", json=body, headers=admin.headers)
    again = api.post("/v1/models", json=body, headers=admin.headers)
    bad_provider = api.post(
        "/v1/models", json={**body, "name": "x", "provider": "skynet"}, headers=admin.headers
    )

    assert refused.status_code == 403
    assert ok(created)["provider"] == "ollama"
    assert again.status_code == 409
    assert (bad_provider.status_code, violations(bad_provider)) == (400, {"provider"})


def test_a_patient_chat_answers_from_the_chart_for_the_care_team_only(
    api: httpx.Client, accounts: Accounts, stack: Stack
) -> None:
    if "patient-record" not in stack.services:
        pytest.skip("services/patient_record is not in this checkout")
    doctor, outsider = accounts.clinician(), accounts.clinician()
    patient = ok(
        api.post(
            "/v1/patients",
            json={"name": "Iris Vale", "date_of_birth": "1950-01-31", "sex": "female"},
            headers=doctor.headers,
        )
    )
    ok(
        api.post(
            f"/v1/patients/{patient['id']}/notes",
            json={
                "content": "S: palpitations\nA: atrial fibrillation\nP: apixaban 5 mg twice daily"
            },
            headers=doctor.headers,
        )
    )

    chat = _create_chat(api, doctor, patient_id=patient["id"])
    reply = _send(api, doctor, chat["id"], "Which medications is she taking?")
    refused = api.post(
        "/v1/chats",
        json={"model_id": chat["model_id"], "patient_id": patient["id"]},
        headers=outsider.headers,
    )

    assert chat["patient_id"] == patient["id"]
    assert "apixaban 5 mg" in reply["assistant_message"]["content"]
    assert (refused.status_code, reason(refused)) == (404, "PATIENT_NOT_FOUND")
