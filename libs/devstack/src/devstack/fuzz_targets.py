"""Real records for the fuzzer to aim at, made through the public REST API.

Random UUIDs in paths mostly meet 404 right after validation; a share of the fuzzer's cases
use these ids instead, so updates, notes, summaries and chats run their whole code path.
Destructive operations (deletes, role changes, deactivation) only ever get records made to
be destroyed, so one case cannot take the ground from under the others: the fuzzing account
never loses its own access.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

import httpx

PASSWORD = "fuzzing-password-0123"  # noqa: S105 - throwaway accounts on a test stack
_JOB_DONE = ("SUCCEEDED", "FAILED")


@dataclass(frozen=True)
class Identity:
    """An account the fuzzer signs in as."""

    name: str  # "clinician" or "admin"
    email: str
    password: str


@dataclass
class Targets:
    """The accounts, and for each operation label ("GET /v1/patients/{id}") real path values."""

    clinician: Identity
    admin: Identity | None
    path_values: dict[str, dict[str, list[str]]] = field(default_factory=dict)


class FuzzSetupError(RuntimeError):
    """The stack refused to create what fuzzing needs."""


def _ok(response: httpx.Response) -> dict[str, object]:
    if response.status_code != 200:
        raise FuzzSetupError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:300]}"
        )
    body: dict[str, object] = response.json()
    return body


def register(client: httpx.Client, label: str) -> tuple[Identity, str]:
    """A new clinician account and its id."""
    email = f"fuzz-{label}-{secrets.token_hex(5)}@fuzz.test"
    user = _ok(
        client.post(
            "/v1/auth/register",
            json={"email": email, "password": PASSWORD, "display_name": f"Fuzz {label}"},
        )
    )
    return Identity("clinician", email, PASSWORD), str(user["id"])


def access_token(client: httpx.Client, identity: Identity) -> str:
    tokens = _ok(
        client.post("/v1/auth/login", json={"email": identity.email, "password": identity.password})
    )
    return str(tokens["access_token"])


def prepare(client: httpx.Client, admin: Identity | None) -> Targets:
    """Accounts, patients with notes, a finished summary job and chats to fuzz against."""
    clinician, clinician_id = register(client, "clinician")
    _, bystander_id = register(client, "bystander")  # the one user roles and removals hit
    headers = {"Authorization": f"Bearer {access_token(client, clinician)}"}
    keep = [_patient(client, headers, f"Fuzz Keep {n}") for n in range(2)]
    doomed = [_patient(client, headers, f"Fuzz Doomed {n}") for n in range(2)]
    notes = [_note(client, headers, patient) for patient in keep for _ in range(2)]
    doomed_notes = [_note(client, headers, patient) for patient in doomed]
    job = _finished_job(client, headers, keep[0])
    model_id = _offline_model(client, headers)
    chats = [_chat(client, headers, model_id, patient) for patient in ("", keep[0])]
    doomed_chats = [_chat(client, headers, model_id, "") for _ in range(2)]
    _ok(client.post(f"/v1/chats/{chats[0]}/messages", json={"content": "Hello"}, headers=headers))
    fuzz_model = _fuzz_model(client, admin) if admin is not None else model_id
    values = {
        "GET /v1/patients/{id}": {"id": keep},
        "PATCH /v1/patients/{id}": {"id": keep},
        "DELETE /v1/patients/{id}": {"id": doomed},
        "POST /v1/patients/{id}/care-team": {"id": keep},
        "DELETE /v1/patients/{id}/care-team/{user_id}": {"id": keep, "user_id": [bystander_id]},
        "POST /v1/patients/{patient_id}/notes": {"patient_id": keep},
        "GET /v1/patients/{patient_id}/notes": {"patient_id": keep},
        "DELETE /v1/patients/{patient_id}/notes": {"patient_id": doomed},
        "GET /v1/patients/{patient_id}/notes/{id}": {"patient_id": keep[:1], "id": notes[:2]},
        "DELETE /v1/patients/{patient_id}/notes/{id}": {
            "patient_id": doomed[:1],
            "id": doomed_notes[:1],
        },
        "GET /v1/patients/{patient_id}/summary": {"patient_id": keep},
        "GET /v1/patients/{patient_id}/summaries": {"patient_id": keep},
        "POST /v1/patients/{patient_id}/summary-jobs": {"patient_id": keep},
        "GET /v1/summary-jobs/{id}": {"id": [job]},
        "GET /v1/summary-jobs/{id}:watch": {"id": [job]},
        "GET /v1/chats/{id}": {"id": chats},
        "PATCH /v1/chats/{id}": {"id": chats},
        "DELETE /v1/chats/{id}": {"id": doomed_chats},
        "GET /v1/chats/{chat_id}/messages": {"chat_id": chats},
        "POST /v1/chats/{chat_id}/messages": {"chat_id": chats},
        "POST /v1/chats/{chat_id}/messages:stream": {"chat_id": chats},
        "GET /v1/users/{id}": {"id": [clinician_id, bystander_id]},
        "POST /v1/users/{id}:setRole": {"id": [bystander_id]},
        "POST /v1/users/{id}:deactivate": {"id": [bystander_id]},
        "PATCH /v1/models/{id}": {"id": [fuzz_model]},
    }
    return Targets(clinician, admin, values)


def _patient(client: httpx.Client, headers: dict[str, str], name: str) -> str:
    body = {"name": name, "date_of_birth": "1970-01-31", "sex": "unknown"}
    return str(_ok(client.post("/v1/patients", json=body, headers=headers))["id"])


def _note(client: httpx.Client, headers: dict[str, str], patient: str) -> str:
    body = {"content": "S: cough for three days. O: afebrile. A: viral URI. P: rest."}
    note = _ok(client.post(f"/v1/patients/{patient}/notes", json=body, headers=headers))
    return str(note["id"])


def _finished_job(client: httpx.Client, headers: dict[str, str], patient: str) -> str:
    """A summary job that has ended, so watching it returns at once."""
    job = _ok(client.post(f"/v1/patients/{patient}/summary-jobs", json={}, headers=headers))
    deadline = time.monotonic() + 30
    while job["state"] not in _JOB_DONE:
        if time.monotonic() > deadline:
            raise FuzzSetupError(f"summary job {job['id']} did not finish: {job['state']}")
        time.sleep(0.2)
        job = _ok(client.get(f"/v1/summary-jobs/{job['id']}", headers=headers))
    return str(job["id"])


def _offline_model(client: httpx.Client, headers: dict[str, str]) -> str:
    models = _ok(client.get("/v1/models", params={"page_size": 100}, headers=headers))
    listed = models["models"]
    for model in listed if isinstance(listed, list) else []:
        if model["provider"] == "offline" and model["enabled"]:
            return str(model["id"])
    raise FuzzSetupError("no enabled offline model to chat with")


def _chat(client: httpx.Client, headers: dict[str, str], model_id: str, patient: str) -> str:
    body = {"title": "Fuzz", "model_id": model_id, "patient_id": patient}
    return str(_ok(client.post("/v1/chats", json=body, headers=headers))["id"])


def _fuzz_model(client: httpx.Client, admin: Identity) -> str:
    """A model of the fuzzer's own for admin updates: never the one other chats use."""
    headers = {"Authorization": f"Bearer {access_token(client, admin)}"}
    body = {"name": f"fuzz-{secrets.token_hex(4)}", "provider": "offline", "enabled": False}
    return str(_ok(client.post("/v1/models", json=body, headers=headers))["id"])


_MODEL_FIELDS = ("name", "provider", "price_per_million_tokens", "enabled")


def model_catalogue(client: httpx.Client, admin: Identity) -> list[dict[str, object]]:
    """Every model as the admin sees it, to put back after an admin run (which may rename or
    disable any model it finds, the one other tests chat with included)."""
    headers = {"Authorization": f"Bearer {access_token(client, admin)}"}
    listed = _ok(client.get("/v1/models", params={"page_size": 100}, headers=headers))["models"]
    return [dict(model) for model in listed] if isinstance(listed, list) else []


def restore_models(
    client: httpx.Client, admin: Identity, catalogue: list[dict[str, object]]
) -> None:
    headers = {"Authorization": f"Bearer {access_token(client, admin)}"}
    for model in catalogue:
        body = {name: model[name] for name in _MODEL_FIELDS}
        _ok(client.patch(f"/v1/models/{model['id']}", json=body, headers=headers))
