"""Creates clients retry, checked as a REST client sees them through the gateway.

For CreatePatient, CreateNote, CreateSummaryJob and SendMessage: the same request_id
again returns the first result; the same request_id with another body is an error;
duplicates sent at once give the first result or 409, never two resources. Also whether
the gateway maps an `Idempotency-Key` header to request_id.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from devstack.chaos.world import World, note_text

_CONCURRENT_DUPLICATES = 6
_CONFLICT = 409


@dataclass(frozen=True)
class Operation:
    """A create: where it is posted, its body for a key and a variant, and its result's id."""

    name: str
    path: str
    body: Callable[[str, int], dict[str, Any]]  # (request_id, variant) -> JSON body
    result_id: Callable[[dict[str, Any]], str]


@dataclass
class Check:
    operation: str
    repeat_returns_first: bool = False
    other_body_status: int = 0
    concurrent_statuses: list[int] = field(default_factory=list)
    concurrent_ids: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


def operations(world: World) -> list[Operation]:
    patient, other_patient = world.chart_ids[0], world.chart_ids[1]
    return [
        Operation(
            "CreatePatient",
            "/v1/patients",
            lambda key, variant: {
                "name": f"Idempotent Patient {variant}",
                "date_of_birth": "1970-01-01",
                "sex": "male",
                "request_id": key,
            },
            lambda body: str(body["id"]),
        ),
        Operation(
            "CreateNote",
            f"/v1/patients/{patient}/notes",
            lambda key, variant: {"content": note_text(variant), "request_id": key},
            lambda body: str(body["id"]),
        ),
        Operation(
            "CreateSummaryJob",
            # The job's only input is the patient: "another body" is another patient.
            "/v1/patients/{patient}/summary-jobs",
            lambda key, variant: {
                "patient": other_patient if variant else patient,
                "request_id": key,
            },
            lambda body: str(body["id"]),
        ),
        Operation(
            "SendMessage",
            f"/v1/chats/{world.chat_id}/messages",
            lambda key, variant: {"content": f"Any allergies? ({variant})", "request_id": key},
            lambda body: str(body["user_message"]["id"]),
        ),
    ]


async def _post(
    client: httpx.AsyncClient, operation: Operation, body: dict[str, Any]
) -> httpx.Response:
    path = operation.path
    if "patient" in body and "{patient}" in path:
        body = dict(body)
        path = path.format(patient=body.pop("patient"))
    return await client.post(path, json=body)


async def check_operation(client: httpx.AsyncClient, operation: Operation) -> Check:
    check = Check(operation.name)
    key = str(uuid.uuid4())
    first = await _post(client, operation, operation.body(key, 0))
    again = await _post(client, operation, operation.body(key, 0))
    if first.status_code != httpx.codes.OK:
        check.problems.append(f"first create answered {first.status_code}: {first.text[:200]}")
        return check
    check.repeat_returns_first = again.status_code == httpx.codes.OK and operation.result_id(
        again.json()
    ) == operation.result_id(first.json())
    if not check.repeat_returns_first:
        check.problems.append(f"a repeat answered {again.status_code}, not the first result")
    other = await _post(client, operation, operation.body(key, 1))
    check.other_body_status = other.status_code
    if other.is_success:
        check.problems.append("the same request_id with another body was accepted")

    duplicate_key = str(uuid.uuid4())
    answers = await asyncio.gather(
        *(
            _post(client, operation, operation.body(duplicate_key, 2))
            for _ in range(_CONCURRENT_DUPLICATES)
        )
    )
    check.concurrent_statuses = sorted(answer.status_code for answer in answers)
    check.concurrent_ids = {operation.result_id(a.json()) for a in answers if a.is_success}
    if len(check.concurrent_ids) != 1:
        check.problems.append(f"concurrent duplicates made {len(check.concurrent_ids)} results")
    if any(not a.is_success and a.status_code != _CONFLICT for a in answers):
        check.problems.append(f"concurrent duplicates answered {check.concurrent_statuses}")
    return check


async def idempotency_key_header_mapped(client: httpx.AsyncClient) -> bool:
    """Whether two CreatePatient calls with one Idempotency-Key header (and no request_id
    in the body) return the same patient."""
    key = str(uuid.uuid4())
    body = {"name": "Header Keyed", "date_of_birth": "1970-01-01", "sex": "female"}
    first = await client.post("/v1/patients", json=body, headers={"Idempotency-Key": key})
    again = await client.post("/v1/patients", json=body, headers={"Idempotency-Key": key})
    return first.is_success and again.is_success and first.json()["id"] == again.json()["id"]


async def check_all(world: World) -> tuple[list[Check], bool]:
    async with await world.rest() as client:
        checks = [await check_operation(client, operation) for operation in operations(world)]
        header = await idempotency_key_header_mapped(client)
    return checks, header


HEADERS = (
    "create",
    "same request_id again",
    "same request_id, other body",
    f"{_CONCURRENT_DUPLICATES} duplicates at once",
    "verdict",
)


def rows(checks: list[Check]) -> list[list[str]]:
    return [
        [
            check.operation,
            "first result" if check.repeat_returns_first else "DIFFERENT",
            f"HTTP {check.other_body_status}",
            f"HTTP {sorted(set(check.concurrent_statuses))}, {len(check.concurrent_ids)} result",
            "pass" if check.passed else "FAIL: " + "; ".join(check.problems),
        ]
        for check in checks
    ]
