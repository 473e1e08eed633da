"""SummaryService through the real gateway: summaries of a patient's notes on demand, and as
background jobs watched as newline-delimited JSON until they end."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from rest_answers import ok, reason, violations
from stack_harness import Account, Accounts, Stack

pytestmark = pytest.mark.usefixtures("summary_service")

BORN = "1961-07-04"
VISITS = (
    (
        "2026-03-03T09:30:00Z",
        "S: Productive cough and fever for 4 days.\n"
        "O: T 38.9 C, SpO2 92% on room air, crackles at right base.\n"
        "A: Community-acquired pneumonia, right lower lobe.\n"
        "P: Start amoxicillin 1 g three times daily. Review in one week.",
    ),
    (
        "2026-03-10T09:00:00Z",
        "S: Cough improving, no fever for 48 hours.\n"
        "O: T 36.8 C, SpO2 97% on room air.\n"
        "A: Community-acquired pneumonia, improving.\n"
        "P: Complete amoxicillin 1 g three times daily for 7 days total.",
    ),
)


@pytest.fixture(scope="session")
def summary_service(stack: Stack) -> None:
    if "summary" not in stack.services:
        pytest.skip("services/summary is not in this checkout")


def _age(born: str) -> int:
    birth, today = date.fromisoformat(born), datetime.now(UTC).date()
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def _patient(api: httpx.Client, account: Account, *, with_notes: bool = True) -> str:
    body = {"name": "Pat Pneumonia", "date_of_birth": BORN, "sex": "female"}
    patient_id = str(ok(api.post("/v1/patients", json=body, headers=account.headers))["id"])
    for note_time, content in VISITS if with_notes else ():
        ok(
            api.post(
                f"/v1/patients/{patient_id}/notes",
                json={"content": content, "note_time": note_time},
                headers=account.headers,
            )
        )
    return patient_id


def _watch(api: httpx.Client, account: Account, job_id: str) -> list[dict[str, Any]]:
    with api.stream(
        "GET", f"/v1/summary-jobs/{job_id}:watch", headers=account.headers, timeout=60
    ) as response:
        assert response.status_code == 200, response.read()
        return [json.loads(line) for line in response.iter_lines() if line.strip()]


def test_a_clinician_gets_a_summary_of_a_patients_notes(
    api: httpx.Client, accounts: Accounts
) -> None:
    doctor = accounts.clinician()
    patient_id = _patient(api, doctor)
    summary = ok(api.get(f"/v1/patients/{patient_id}/summary", headers=doctor.headers))
    assert summary["patient_id"] == patient_id
    assert (summary["note_count"], summary["patient_age"]) == (2, _age(BORN))
    assert "pneumonia" in summary["text"].lower()
    assert "amoxicillin" in summary["text"]
    assert (summary["provider"], summary["model"]) == ("offline", "medstation-offline")
    assert summary["generated_at"].endswith("Z")

    again = ok(api.get(f"/v1/patients/{patient_id}/summary", headers=doctor.headers))
    assert again == summary  # the notes did not change: the same summary
    listed = ok(api.get(f"/v1/patients/{patient_id}/summaries", headers=doctor.headers))
    assert [s["id"] for s in listed["summaries"]] == [summary["id"]]


def test_a_summary_job_is_watched_until_it_succeeds(api: httpx.Client, accounts: Accounts) -> None:
    doctor = accounts.clinician()
    patient_id = _patient(api, doctor)
    request_id = str(uuid.uuid4())
    jobs_path = f"/v1/patients/{patient_id}/summary-jobs"
    job = ok(api.post(jobs_path, json={"request_id": request_id}, headers=doctor.headers))
    assert (job["state"], job["patient_id"]) == ("QUEUED", patient_id)
    retried = ok(api.post(jobs_path, json={"request_id": request_id}, headers=doctor.headers))
    assert retried["id"] == job["id"]

    updates = _watch(api, doctor, job["id"])
    assert updates[0]["id"] == job["id"]
    states = [update["state"] for update in updates]
    assert states[-1] == "SUCCEEDED"
    assert states.count("SUCCEEDED") == 1
    summary = updates[-1]["summary"]
    assert "amoxicillin" in summary["text"]
    assert summary["note_count"] == 2
    done = ok(api.get(f"/v1/summary-jobs/{job['id']}", headers=doctor.headers))
    assert (done["state"], done["summary"]["id"]) == ("SUCCEEDED", summary["id"])


def test_outsiders_get_404_for_a_patients_summaries_and_jobs(
    api: httpx.Client, accounts: Accounts
) -> None:
    doctor, outsider = accounts.clinician(), accounts.clinician()
    patient_id = _patient(api, doctor)
    job = ok(api.post(f"/v1/patients/{patient_id}/summary-jobs", json={}, headers=doctor.headers))
    paths: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/v1/patients/{patient_id}/summary", None),
        ("GET", f"/v1/patients/{patient_id}/summaries", None),
        ("POST", f"/v1/patients/{patient_id}/summary-jobs", {}),
        ("GET", f"/v1/summary-jobs/{job['id']}", None),
        ("GET", f"/v1/summary-jobs/{job['id']}:watch", None),
    ]
    for method, path, body in paths:
        response = api.request(method, path, json=body, headers=outsider.headers)
        assert response.status_code == 404, (method, path, response.text)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/patients/not-a-uuid/summary", "patient_id"),
        ("/v1/patients/12345/summaries", "patient_id"),
        ("/v1/summary-jobs/nope", "id"),
        ("/v1/summary-jobs/nope:watch", "id"),
    ],
)
def test_a_malformed_id_is_a_400_naming_it(
    api: httpx.Client, accounts: Accounts, path: str, field: str
) -> None:
    doctor = accounts.clinician()
    response = api.get(path, headers=doctor.headers)
    assert response.status_code == 400, response.text
    assert field in violations(response)


def test_a_malformed_request_id_is_a_400_naming_it(api: httpx.Client, accounts: Accounts) -> None:
    doctor = accounts.clinician()
    patient_id = _patient(api, doctor)
    response = api.post(
        f"/v1/patients/{patient_id}/summary-jobs",
        json={"request_id": "retry-1"},
        headers=doctor.headers,
    )
    assert response.status_code == 400, response.text
    assert "request_id" in violations(response)


def test_a_patient_without_notes_cannot_be_summarized(
    api: httpx.Client, accounts: Accounts
) -> None:
    doctor = accounts.clinician()
    patient_id = _patient(api, doctor, with_notes=False)
    response = api.get(f"/v1/patients/{patient_id}/summary", headers=doctor.headers)
    assert response.status_code == 400, response.text  # FAILED_PRECONDITION
    assert reason(response) == "PATIENT_HAS_NO_NOTES"
