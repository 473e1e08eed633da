"""PatientRecordService through the real gateway: what a clinician's app sees over REST."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import httpx
import pytest
from rest_answers import violations
from stack_harness import Account, Accounts, Stack

pytestmark = pytest.mark.usefixtures("patient_service")


@pytest.fixture(scope="session")
def patient_service(stack: Stack) -> None:
    if "patient-record" not in stack.services:
        pytest.skip("services/patient_record is not in this checkout")


def _create(api: httpx.Client, account: Account, **fields: Any) -> dict[str, Any]:
    body = {"name": "Ada Lovelace", "date_of_birth": "1985-12-10", "sex": "female", **fields}
    response = api.post("/v1/patients", json=body, headers=account.headers)
    assert response.status_code == 200, response.text
    patient: dict[str, Any] = response.json()
    return patient


def _patient_paths(patient_id: str, note_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", f"/v1/patients/{patient_id}", None),
        ("PATCH", f"/v1/patients/{patient_id}", {"name": "Renamed"}),
        ("GET", f"/v1/patients/{patient_id}/notes", None),
        ("POST", f"/v1/patients/{patient_id}/notes", {"content": "S: cough"}),
        ("GET", f"/v1/patients/{patient_id}/notes/{note_id}", None),
        ("DELETE", f"/v1/patients/{patient_id}/notes/{note_id}", None),
        ("DELETE", f"/v1/patients/{patient_id}/notes", None),
        ("POST", f"/v1/patients/{patient_id}/care-team", {"user_id": patient_id}),
        ("DELETE", f"/v1/patients/{patient_id}/care-team/{patient_id}", None),
        ("DELETE", f"/v1/patients/{patient_id}", None),
    ]


def test_a_clinician_keeps_a_patient_record_with_notes(
    api: httpx.Client, accounts: Accounts
) -> None:
    doctor = accounts.clinician()
    patient = _create(api, doctor, mrn=f"MRN-{secrets.token_hex(4)}")
    assert patient["care_team"] == [doctor.id]
    assert patient["sex"] == "female"
    assert patient["date_of_birth"] == "1985-12-10"

    note = api.post(
        f"/v1/patients/{patient['id']}/notes",
        json={"content": "S: headache\nO: BP 150/95\nA: hypertension\nP: amlodipine 5 mg"},
        headers=doctor.headers,
    )
    assert note.status_code == 200, note.text
    assert note.json()["author_id"] == doctor.id
    fetched = api.get(
        f"/v1/patients/{patient['id']}/notes/{note.json()['id']}", headers=doctor.headers
    )
    assert fetched.json()["content"].startswith("S: headache")

    updated = api.patch(
        f"/v1/patients/{patient['id']}", params={"update_mask": "name"},
        json={"name": "Ada King", "sex": "male"}, headers=doctor.headers,
    )  # fmt: skip
    assert updated.status_code == 200, updated.text
    assert (updated.json()["name"], updated.json()["sex"]) == ("Ada King", "female")

    deleted = api.delete(f"/v1/patients/{patient['id']}/notes", headers=doctor.headers)
    assert deleted.json() == {"deleted_count": 1}
    assert api.delete(f"/v1/patients/{patient['id']}", headers=doctor.headers).status_code == 200
    assert api.get(f"/v1/patients/{patient['id']}", headers=doctor.headers).status_code == 404


def test_outsiders_get_404_everywhere_until_added_and_again_once_removed(
    api: httpx.Client, accounts: Accounts
) -> None:
    doctor, outsider = accounts.clinician(), accounts.clinician()
    patient = _create(api, doctor)
    note = api.post(
        f"/v1/patients/{patient['id']}/notes", json={"content": "S: ok"}, headers=doctor.headers
    ).json()
    for method, path, body in _patient_paths(patient["id"], note["id"]):
        response = api.request(method, path, json=body, headers=outsider.headers)
        assert response.status_code == 404, (method, path, response.text)
    listed = api.get("/v1/patients", headers=outsider.headers).json()["patients"]
    assert patient["id"] not in {p["id"] for p in listed}

    added = api.post(
        f"/v1/patients/{patient['id']}/care-team", json={"user_id": outsider.id},
        headers=doctor.headers,
    )  # fmt: skip
    assert added.status_code == 200, added.text
    assert api.get(f"/v1/patients/{patient['id']}", headers=outsider.headers).status_code == 200

    removed = api.delete(
        f"/v1/patients/{patient['id']}/care-team/{outsider.id}", headers=doctor.headers
    )
    assert removed.status_code == 200
    # Right after a read, too: every read checks access again, so removal takes effect at once.
    assert api.get(f"/v1/patients/{patient['id']}", headers=outsider.headers).status_code == 404


def test_the_last_care_team_member_cannot_leave(api: httpx.Client, accounts: Accounts) -> None:
    doctor = accounts.clinician()
    patient = _create(api, doctor)
    response = api.delete(
        f"/v1/patients/{patient['id']}/care-team/{doctor.id}", headers=doctor.headers
    )
    assert response.status_code == 400  # FAILED_PRECONDITION


def test_reads_by_members_and_admins_are_audited(api: httpx.Client, accounts: Accounts) -> None:
    doctor, admin = accounts.clinician(), accounts.admin()
    patient = _create(api, doctor)
    api.get(f"/v1/patients/{patient['id']}", headers=doctor.headers)
    assert api.get(f"/v1/patients/{patient['id']}", headers=admin.headers).status_code == 200

    events = api.get(
        "/v1/audit-events", params={"patient_id": patient["id"]}, headers=admin.headers
    )
    assert events.status_code == 200, events.text
    seen = {(event["actor_id"], event["action"]) for event in events.json()["audit_events"]}
    assert (doctor.id, "patient.read") in seen
    assert (admin.id, "patient.read") in seen
    assert all(event["trace_id"] for event in events.json()["audit_events"])
    assert api.get("/v1/audit-events", headers=doctor.headers).status_code == 403


def test_fuzzy_search_tolerates_typos(api: httpx.Client, accounts: Accounts) -> None:
    doctor = accounts.clinician()
    wanted = _create(api, doctor, name="Johnathan Smithers")
    _create(api, doctor, name="Maria Gonzales")
    found = api.get("/v1/patients", params={"query": "Jonathan Smithrs"}, headers=doctor.headers)
    assert found.status_code == 200, found.text
    names = [p["name"] for p in found.json()["patients"]]
    assert names[0] == "Johnathan Smithers"
    assert wanted["id"] == found.json()["patients"][0]["id"]
    assert "Maria Gonzales" not in names


def test_page_walk_has_no_duplicates_or_gaps_while_rows_are_added(
    api: httpx.Client, accounts: Accounts, stack: Stack
) -> None:
    doctor = accounts.clinician()
    existing = {_create(api, doctor, name=f"Walker {i:03d}")["id"] for i in range(120)}
    stop = threading.Event()

    def insert_concurrently() -> None:
        with httpx.Client(base_url=stack.gateway_url, timeout=10) as other:
            for i in range(200):
                if stop.is_set():
                    return
                _create(other, doctor, name=f"Late {i:03d}")

    inserter = threading.Thread(target=insert_concurrently)
    inserter.start()
    try:
        seen: list[str] = []
        token = ""
        for _ in range(100):
            page = api.get(
                "/v1/patients", params={"page_size": 7, "page_token": token, "order_by": "name"},
                headers=doctor.headers,
            ).json()  # fmt: skip
            seen += [p["id"] for p in page["patients"]]
            token = page["next_page_token"]
            if not token:
                break
    finally:
        stop.set()
        inserter.join()
    assert len(seen) == len(set(seen)), "a patient appeared twice"
    assert existing <= set(seen), "a patient that existed before the walk was skipped"


@pytest.mark.parametrize(
    "query", ["'; DROP TABLE patients; --", "%", "_", "\\", "' OR 1=1 --", "Robert'); --"]
)
def test_sql_metacharacters_are_just_text(
    api: httpx.Client, accounts: Accounts, query: str
) -> None:
    doctor = accounts.clinician()
    response = api.get("/v1/patients", params={"query": query}, headers=doctor.headers)
    assert response.status_code in (200, 400), response.text


@pytest.mark.parametrize("bad_id", ["1 OR 1=1", "'; --", "..%2F..", "00000000-0000-0000-0000"])
def test_malformed_ids_are_400_or_404_never_500(
    api: httpx.Client, accounts: Accounts, bad_id: str
) -> None:
    doctor = accounts.clinician()
    response = api.get(f"/v1/patients/{bad_id}", headers=doctor.headers)
    assert response.status_code in (400, 404), response.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "", "date_of_birth": "1990-01-01", "sex": "female"}, "name"),
        ({"name": "A", "date_of_birth": "1990-02-30", "sex": "female"}, "date_of_birth"),
        ({"name": "A", "date_of_birth": "2999-01-01", "sex": "female"}, "date_of_birth"),
        ({"name": "A", "date_of_birth": "1990-01-01", "sex": "SEX_FEMALE"}, "sex"),
        ({"name": "A" * 201, "date_of_birth": "1990-01-01", "sex": "other"}, "name"),
    ],
)
def test_bad_patients_are_400_naming_the_field(
    api: httpx.Client, accounts: Accounts, body: dict[str, str], field: str
) -> None:
    doctor = accounts.clinician()
    response = api.post("/v1/patients", json=body, headers=doctor.headers)
    assert response.status_code == 400, response.text
    assert field in violations(response)


def test_duplicate_mrn_is_409(api: httpx.Client, accounts: Accounts) -> None:
    doctor = accounts.clinician()
    mrn = f"MRN-{secrets.token_hex(4)}"
    _create(api, doctor, mrn=mrn)
    again = api.post(
        "/v1/patients",
        json={"name": "B", "date_of_birth": "1990-01-01", "sex": "male", "mrn": mrn},
        headers=doctor.headers,
    )
    assert again.status_code == 409


def test_notes_are_bounded_and_listed_newest_first(api: httpx.Client, accounts: Accounts) -> None:
    doctor = accounts.clinician()
    patient = _create(api, doctor)
    notes_path = f"/v1/patients/{patient['id']}/notes"
    too_long = api.post(notes_path, json={"content": "x" * 100_001}, headers=doctor.headers)
    assert too_long.status_code == 400
    assert "content" in violations(too_long)
    future = api.post(
        notes_path, json={"content": "S: later", "note_time": "2999-01-01T00:00:00Z"},
        headers=doctor.headers,
    )  # fmt: skip
    assert future.status_code == 400
    assert "note_time" in violations(future)
    for time in ("2024-01-01T10:00:00Z", "2025-06-01T10:00:00Z", "2023-03-01T10:00:00Z"):
        created = api.post(
            notes_path, json={"content": f"S: visit {time}", "note_time": time},
            headers=doctor.headers,
        )  # fmt: skip
        assert created.status_code == 200, created.text
    listed = api.get(notes_path, params={"page_size": 2}, headers=doctor.headers).json()
    assert [n["note_time"][:4] for n in listed["notes"]] == ["2025", "2024"]
    rest = api.get(
        notes_path, params={"page_token": listed["next_page_token"]}, headers=doctor.headers
    ).json()
    assert [n["note_time"][:4] for n in rest["notes"]] == ["2023"]


def test_create_patient_is_idempotent_with_a_request_id(
    api: httpx.Client, accounts: Accounts
) -> None:
    doctor = accounts.clinician()
    request_id = "6f1c1f3e-2a51-4d38-9a7c-5f0d7b7e2a10"
    first = _create(api, doctor, name="Idem Potent", request_id=request_id)
    second = _create(api, doctor, name="Idem Potent", request_id=request_id)
    assert first["id"] == second["id"]
