"""Fields the server owns (ids, authors, roles, times, care teams, a chat's model and patient,
a job's state and summary) are never set by a client (OWASP API3, mass assignment): naming
one in an update mask is a 400 on `update_mask`, sending one in a body changes nothing, and a
body cannot retarget a request at another id than its URL's."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from rest_answers import ok, violations
from stack_harness import Account, Accounts, Stack

FORGED_TIME = "2001-01-01T00:00:00Z"
FORGED_ID = "00000000-0000-4000-8000-0000000000ff"
OFFLINE_MODEL = "medstation-offline"


@dataclass
class Resources:
    """One of everything that has an Update RPC, with the account allowed to change it."""

    api: httpx.Client
    doctor: Account
    colleague: Account
    admin: Account
    patient: dict[str, Any]
    chat: dict[str, Any]
    model: dict[str, Any]

    def path_and_owner(self, kind: str) -> tuple[str, Account]:
        return {
            "user": ("/v1/users/me", self.doctor),
            "patient": (f"/v1/patients/{self.patient['id']}", self.doctor),
            "chat": (f"/v1/chats/{self.chat['id']}", self.doctor),
            "model": (f"/v1/models/{self.model['id']}", self.admin),
        }[kind]

    def read(self, kind: str, resource_id: str = "") -> dict[str, Any]:
        """The resource of `kind` (or another one of that kind) as its owner sees it now."""
        path, owner = self.path_and_owner(kind)
        if resource_id:
            path = f"{path.rsplit('/', 1)[0]}/{resource_id}"
        if kind == "model":
            models = ok(self.api.get("/v1/models", headers=owner.headers))["models"]
            wanted = resource_id or self.model["id"]
            found: dict[str, Any] = next(m for m in models if m["id"] == wanted)
            return found
        return ok(self.api.get(path, headers=owner.headers))


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as api:
        yield api


@pytest.fixture(scope="module")
def resources(client: httpx.Client, stack: Stack) -> Resources:
    """Shared by the tests: each compares what it reads before and after its own change."""
    api, accounts = client, Accounts(client, stack)
    doctor, colleague, admin = accounts.clinician(), accounts.clinician(), accounts.admin()
    patient = ok(
        api.post(
            "/v1/patients",
            json={"name": "Owned Fields", "date_of_birth": "1975-03-03", "sex": "female"},
            headers=doctor.headers,
        )
    )
    models = ok(api.get("/v1/models", headers=doctor.headers))["models"]
    offline = next(m["id"] for m in models if m["name"] == OFFLINE_MODEL)
    chat = ok(api.post("/v1/chats", json={"model_id": offline}, headers=doctor.headers))
    model = ok(
        api.post(
            "/v1/models",
            json={"name": f"owned-{secrets.token_hex(4)}", "provider": "ollama"},
            headers=admin.headers,
        )
    )
    return Resources(api, doctor, colleague, admin, patient, chat, model)


# What each Update RPC's resource has that only the server sets, and one field a client
# may change (with a new value).
SERVER_OWNED = {
    "user": (("id", "email", "role", "active", "created_at", "updated_at"), "display_name"),
    "patient": (("id", "care_team", "created_at", "updated_at"), "name"),
    "chat": (("id", "model_id", "patient_id", "created_at", "updated_at"), "title"),
    "model": (("id", "created_at", "updated_at"), "price_per_million_tokens"),
}
MASK_CASES = [(kind, field) for kind, (fields, _) in SERVER_OWNED.items() for field in fields]
CHANGEABLE = {
    "display_name": "Dr Changed",
    "name": "Changed Name",
    "title": "Changed title",
    "price_per_million_tokens": 2.5,
}


def _forged(resources: Resources, field: str) -> object:
    return {
        "role": "admin",
        "active": False,
        "email": "forged@e2e.test",
        "care_team": [resources.colleague.id],
        "model_id": resources.model["id"],
        "patient_id": resources.patient["id"],
    }.get(field, FORGED_TIME if field.endswith("_at") else FORGED_ID)


@pytest.mark.parametrize(("kind", "field"), MASK_CASES)
def test_an_update_mask_naming_a_server_owned_field_is_400(
    resources: Resources, kind: str, field: str
) -> None:
    path, owner = resources.path_and_owner(kind)
    before = resources.read(kind)

    response = resources.api.patch(
        path,
        params={"update_mask": field},
        json={field: _forged(resources, field)} if field != "id" else {},
        headers=owner.headers,
    )

    assert response.status_code == 400, response.text
    assert violations(response) == {"update_mask"}
    assert resources.read(kind) == before


@pytest.mark.parametrize("kind", SERVER_OWNED)
def test_server_owned_fields_in_a_patch_body_change_nothing(
    resources: Resources, kind: str
) -> None:
    owned, changeable = SERVER_OWNED[kind]
    path, owner = resources.path_and_owner(kind)
    before = resources.read(kind)
    # The id is the URL's: a different one is refused (see below), so it is left out here.
    body = {field: _forged(resources, field) for field in owned if field != "id"}

    for params in ({}, {"update_mask": changeable}):
        changed = ok(
            resources.api.patch(
                path,
                params=params,
                json={**body, changeable: CHANGEABLE[changeable]},
                headers=owner.headers,
            )
        )

        assert changed[changeable] == CHANGEABLE[changeable]
        for field in owned:
            if field != "updated_at":  # moves with the change itself, never to the forgery
                assert changed[field] == before[field], (field, changed)
        assert changed["updated_at"] != FORGED_TIME
    if kind == "patient":
        forged_member = resources.colleague
        response = resources.api.get(path, headers=forged_member.headers)
        assert response.status_code == 404


@pytest.mark.parametrize("kind", ["patient", "chat", "model"])
def test_a_body_cannot_retarget_an_update_at_another_id(resources: Resources, kind: str) -> None:
    """PATCH /v1/patients/A with {"id": "B"} would otherwise change B (the body's id wins
    over the URL's in transcoding)."""
    path, owner = resources.path_and_owner(kind)
    other = {
        "patient": lambda: ok(
            resources.api.post(
                "/v1/patients",
                json={"name": "Other Patient", "date_of_birth": "1960-06-06", "sex": "male"},
                headers=owner.headers,
            )
        ),
        "chat": lambda: ok(
            resources.api.post(
                "/v1/chats", json={"model_id": resources.chat["model_id"]}, headers=owner.headers
            )
        ),
        "model": lambda: ok(
            resources.api.post(
                "/v1/models",
                json={"name": f"other-{secrets.token_hex(4)}", "provider": "ollama"},
                headers=owner.headers,
            )
        ),
    }[kind]()
    _, changeable = SERVER_OWNED[kind]
    retargeted = {"name": "Retargeted", "title": "Retargeted", "price_per_million_tokens": 9.75}

    response = resources.api.patch(
        path, json={"id": other["id"], changeable: retargeted[changeable]}, headers=owner.headers
    )

    assert response.status_code == 400, response.text
    assert "id" in response.json()["message"]
    assert resources.read(kind)[changeable] != retargeted[changeable]
    assert resources.read(kind, other["id"])[changeable] != retargeted[changeable]


Check = Callable[[dict[str, Any]], bool]


def _ignored_or_refused(response: httpx.Response, fields: set[str], check: Check) -> None:
    """Either a 400 naming a forged field, or a success where the server set them all."""
    if response.status_code == 400:
        named = violations(response) | {
            field for field in fields if field in response.json()["message"]
        }
        assert named & fields, response.text
        return
    assert response.status_code == 200, response.text
    assert check(response.json()), response.text


def test_create_requests_cannot_set_server_owned_fields(
    api: httpx.Client, accounts: Accounts
) -> None:
    doctor, colleague, admin = accounts.clinician(), accounts.clinician(), accounts.admin()
    forged = {"id": FORGED_ID, "created_at": FORGED_TIME, "updated_at": FORGED_TIME}

    email = f"forger-{secrets.token_hex(4)}@e2e.test"
    registered = api.post(
        "/v1/auth/register",
        json={"email": email, "password": "a-long-enough-password", "display_name": "F",
              "role": "admin", "active": False, **forged},
    )  # fmt: skip
    _ignored_or_refused(
        registered,
        {"role", "active", *forged},
        lambda user: (
            (user["role"], user["active"], user["id"]) == ("clinician", True, user["id"])
            and user["id"] != FORGED_ID
        ),
    )

    patient = api.post(
        "/v1/patients",
        json={"name": "Forged", "date_of_birth": "1990-01-01", "sex": "male",
              "care_team": [colleague.id], **forged},
        headers=doctor.headers,
    )  # fmt: skip
    _ignored_or_refused(
        patient,
        {"care_team", *forged},
        lambda body: body["care_team"] == [doctor.id] and body["id"] != FORGED_ID,
    )

    patient_id = ok(
        api.post(
            "/v1/patients",
            json={"name": "Real", "date_of_birth": "1990-01-01", "sex": "male"},
            headers=doctor.headers,
        )
    )["id"]
    note = api.post(
        f"/v1/patients/{patient_id}/notes",
        json={"content": "S: forged author", "author_id": colleague.id, **forged},
        headers=doctor.headers,
    )
    _ignored_or_refused(
        note,
        {"author_id", *forged},
        lambda body: body["author_id"] == doctor.id and body["created_at"] != FORGED_TIME,
    )

    job = api.post(
        f"/v1/patients/{patient_id}/summary-jobs",
        json={"state": "SUCCEEDED", "error": "", "summary": {"text": "forged"}, **forged},
        headers=doctor.headers,
    )
    _ignored_or_refused(
        job,
        {"state", "summary", *forged},
        lambda body: body["state"] == "QUEUED" and body["id"] != FORGED_ID,
    )

    models = ok(api.get("/v1/models", headers=doctor.headers))["models"]
    offline = next(m["id"] for m in models if m["name"] == OFFLINE_MODEL)
    chat = api.post("/v1/chats", json={"model_id": offline, **forged}, headers=doctor.headers)
    _ignored_or_refused(chat, set(forged), lambda body: body["id"] != FORGED_ID)

    chat_id = ok(api.post("/v1/chats", json={"model_id": offline}, headers=doctor.headers))["id"]
    sent = api.post(
        f"/v1/chats/{chat_id}/messages",
        json={"content": "Hello", "role": "assistant", "token_count": 0, **forged},
        headers=doctor.headers,
    )
    _ignored_or_refused(
        sent,
        {"role", "token_count", *forged},
        lambda body: (
            body["user_message"]["role"] == "user" and body["user_message"]["id"] != FORGED_ID
        ),
    )

    model = api.post(
        "/v1/models",
        json={"name": f"forged-{secrets.token_hex(4)}", "provider": "ollama", **forged},
        headers=admin.headers,
    )
    _ignored_or_refused(model, set(forged), lambda body: body["id"] != FORGED_ID)
