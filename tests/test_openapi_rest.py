"""GET /openapi.json through the real gateway: served to anyone, and true to what it describes."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import jsonschema_rs
import pytest
from stack_harness import Accounts, Stack

from devstack import gateway_config

COMMITTED = gateway_config.repo_root() / gateway_config.OPENAPI_RELATIVE_PATH


@pytest.fixture(scope="module")
def document(stack: Stack) -> dict[str, Any]:
    """The document as clients get it: from the gateway."""
    loaded: dict[str, Any] = httpx.get(f"{stack.gateway_url}/openapi.json", timeout=10).json()
    return loaded


def conforms(document: dict[str, Any], schema_name: str, body: Any) -> None:
    """Raise unless `body` is valid against the document's named component schema."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    jsonschema_rs.Draft202012Validator(schema, validate_formats=True).validate(body)


def test_the_gateway_serves_the_committed_document_without_a_token(api: httpx.Client) -> None:
    response = api.get("/openapi.json", headers={"Origin": "https://tools.example"})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.content == COMMITTED.read_bytes()
    assert response.json()["openapi"] == "3.1.0"


def test_only_get_serves_the_document(api: httpx.Client) -> None:
    assert api.post("/openapi.json", json={}).status_code == 404


def _operations(document: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(method, concrete path, needs a token) for each documented operation."""
    found = []
    for template, item in document["paths"].items():
        path = template
        for parameter in {p["name"] for op in item.values() for p in op.get("parameters", [])}:
            path = path.replace("{" + parameter + "}", str(uuid.uuid4()))
        for method, operation in item.items():
            found.append((method.upper(), path, operation.get("security") != []))
    return found


def test_the_document_says_which_operations_need_a_token(
    api: httpx.Client, document: dict[str, Any]
) -> None:
    documented = _operations(document)
    answers = {
        (method, path): api.request(method, path, json={} if method != "GET" else None)
        for method, path, _ in documented
    }

    wrong = [
        (method, path, answers[method, path].status_code, needs_token)
        for method, path, needs_token in documented
        if (answers[method, path].status_code == 401) != needs_token
    ]
    assert wrong == []


def test_responses_match_their_documented_schemas(
    api: httpx.Client, accounts: Accounts, document: dict[str, Any]
) -> None:
    doctor = accounts.clinician()
    headers = doctor.headers

    me = api.get("/v1/users/me", headers=headers)
    patient = api.post(
        "/v1/patients",
        json={"name": "Ada Openapi", "date_of_birth": "1980-02-29", "sex": "female"},
        headers=headers,
    )
    listed = api.get("/v1/patients", params={"page_size": 1}, headers=headers)
    missing = api.get(f"/v1/patients/{uuid.uuid4()}", headers=headers)
    invalid = api.get("/v1/patients/not-a-uuid", headers=headers)

    conforms(document, "medstation.user.v1.User", me.json())
    conforms(document, "medstation.patient.v1.Patient", patient.json())
    conforms(document, "medstation.patient.v1.ListPatientsResponse", listed.json())
    assert (missing.status_code, invalid.status_code) == (404, 400)
    conforms(document, "google.rpc.Status", missing.json())
    conforms(document, "google.rpc.Status", invalid.json())


def test_a_value_outside_a_documented_enum_is_refused(
    api: httpx.Client, accounts: Accounts, document: dict[str, Any]
) -> None:
    doctor = accounts.clinician()
    sexes = document["components"]["schemas"]["medstation.patient.v1.Patient"]["properties"]["sex"][
        "enum"
    ]
    body = {"name": "Enum Check", "date_of_birth": "1990-01-01"}

    accepted = [
        api.post("/v1/patients", json={**body, "sex": sex}, headers=doctor.headers).status_code
        for sex in sexes
    ]
    refused = api.post("/v1/patients", json={**body, "sex": "SEX_FEMALE"}, headers=doctor.headers)

    assert accepted == [200] * len(sexes)
    assert refused.status_code == 400
