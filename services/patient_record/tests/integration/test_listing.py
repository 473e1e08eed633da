"""ListPatients: every ordering walks stable pages while rows are inserted, fuzzy search
finds names despite typos, and page tokens only continue their own list."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Awaitable
from datetime import date
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from devstack.rpc_failures import failure
from medstation.patient.v1 import patient_service_pb2 as pb
from services.patient_record.tests.integration.patient_client import Caller, PatientClient

if TYPE_CHECKING:
    from medstation.patient.v1.patient_service_pb2_grpc import PatientRecordServiceAsyncStub

FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken"]
LAST = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"]
# Few distinct birth dates: ties everywhere, which only the id can break.
BIRTHS = ["1950-01-01", "1960-06-15", "1970-12-31", "1980-02-29", "1990-07-04"]
ORDERINGS = [
    "",
    "name desc",
    "date_of_birth",
    "date_of_birth desc",
    "created_at",
    "created_at desc",
]


async def _create_many(client: PatientClient, caller: Caller, count: int) -> list[pb.Patient]:
    async def one() -> pb.Patient:
        name = f"{random.choice(FIRST)} {random.choice(LAST)}"  # noqa: S311  # test data
        return await client.create_patient(caller, name, date_of_birth=random.choice(BIRTHS))  # noqa: S311

    created: list[pb.Patient] = []
    for _ in range(0, count, 20):  # a few at a time: keeps the connection pool happy
        created += await asyncio.gather(*(one() for _ in range(min(20, count - len(created)))))
    return created


def _sort_key(order_by: str, patient: pb.Patient) -> tuple[object, str]:
    field = order_by.removesuffix(" desc") or "name"
    if field == "created_at":
        return patient.created_at.ToDatetime(), patient.id
    if field == "date_of_birth":
        return date.fromisoformat(patient.date_of_birth), patient.id
    return patient.name, patient.id


async def _walk(
    stub: PatientRecordServiceAsyncStub, caller: Caller, request: pb.ListPatientsRequest
) -> list[pb.Patient]:
    seen: list[pb.Patient] = []
    while True:
        page = await stub.ListPatients(request, metadata=caller.metadata)
        assert len(page.patients) <= max(request.page_size, 1)
        seen += page.patients
        if not page.next_page_token:
            return seen
        request.page_token = page.next_page_token


@pytest.mark.timeout(60)
async def test_every_ordering_pages_without_duplicates_or_gaps_while_rows_are_inserted(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    existing = await _create_many(client, doctor, 125)

    for order_by in ORDERINGS:
        inserting = asyncio.create_task(_create_many(client, doctor, 15))
        request = pb.ListPatientsRequest(page_size=9, order_by=order_by)
        seen = await _walk(stub, doctor, request)
        added = await inserting

        ids = [patient.id for patient in seen]
        assert len(ids) == len(set(ids)), f"duplicates in {order_by!r}"
        assert {p.id for p in existing} <= set(ids), f"gaps in {order_by!r}"
        assert set(ids) <= {p.id for p in existing} | {p.id for p in added}
        keys = [_sort_key(order_by, patient) for patient in seen]
        assert keys == sorted(keys, reverse=order_by.endswith(" desc")), order_by
        existing += added


async def test_the_default_order_is_by_name_then_id(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    # Names every collation orders alike: the database's collation decides, not Python.
    for name in ("Zed Zimmer", "Adam Apple", "Mia Mueller", "Mia Mueller"):
        await client.create_patient(doctor, name)

    page = await stub.ListPatients(pb.ListPatientsRequest(), metadata=doctor.metadata)

    keys = [(patient.name, patient.id) for patient in page.patients]
    assert keys == sorted(keys)


async def test_fuzzy_search_finds_names_despite_typos(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    target = await client.create_patient(doctor, "Johnathan Smithers")
    near = await client.create_patient(doctor, "John Smith")
    await client.create_patient(doctor, "Maria Garcia")

    found = await stub.ListPatients(
        pb.ListPatientsRequest(query="Jonathan Smithrs"), metadata=doctor.metadata
    )
    partial = await stub.ListPatients(
        pb.ListPatientsRequest(query="smithers"), metadata=doctor.metadata
    )
    by_name = await stub.ListPatients(
        pb.ListPatientsRequest(query="Smithe", order_by="name desc"), metadata=doctor.metadata
    )

    assert found.patients[0].id == target.id  # the best match first
    assert "Maria Garcia" not in {p.name for p in found.patients}
    assert partial.patients[0].id == target.id
    assert [p.id for p in by_name.patients] == [target.id, near.id]


async def test_search_results_page_by_relevance(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor = client.clinician()
    suffix = secrets.token_hex(2)
    names = [f"Smithers {suffix}", f"Smithers {suffix}", f"Smithers {suffix}x", f"Smythe {suffix}"]
    created = {(await client.create_patient(doctor, name)).id for name in names}

    walked = await _walk(
        stub, doctor, pb.ListPatientsRequest(query=f"Smithers {suffix}", page_size=1)
    )
    whole = await stub.ListPatients(
        pb.ListPatientsRequest(query=f"Smithers {suffix}", page_size=100), metadata=doctor.metadata
    )

    assert [p.id for p in walked] == [p.id for p in whole.patients]
    assert {p.id for p in walked} <= created
    assert len({p.id for p in walked}) == len(walked) >= 3


async def test_page_tokens_only_continue_their_own_list(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    doctor, other = client.clinician(), client.clinician()
    for _ in range(3):
        await client.create_patient(doctor)
    first = await stub.ListPatients(
        pb.ListPatientsRequest(page_size=1, order_by="name"), metadata=doctor.metadata
    )
    token = first.next_page_token
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")

    def patients(caller: Caller, **fields: Any) -> Awaitable[object]:
        request = pb.ListPatientsRequest(page_size=1, **fields)
        return stub.ListPatients(request, metadata=caller.metadata)

    attempts = [
        patients(doctor, order_by="name desc", page_token=token),
        patients(doctor, query="Test", page_token=token),
        patients(other, order_by="name", page_token=token),
        patients(doctor, order_by="name", page_token=tampered),
        stub.ListNotes(
            pb.ListNotesRequest(patient_id=first.patients[0].id, page_token=token),
            metadata=doctor.metadata,
        ),
    ]
    for attempt in attempts:
        failed = await failure(attempt)
        assert (failed.code, failed.reason, failed.fields) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_PAGE_TOKEN",
            ["page_token"],
        )


async def test_page_size_rules(client: PatientClient, stub: PatientRecordServiceAsyncStub) -> None:
    admin = client.admin()
    await _create_many(client, client.clinician(), 101 - 0)

    default = await stub.ListPatients(pb.ListPatientsRequest(), metadata=admin.metadata)
    capped = await stub.ListPatients(
        pb.ListPatientsRequest(page_size=1000), metadata=admin.metadata
    )
    negative = await failure(
        stub.ListPatients(pb.ListPatientsRequest(page_size=-1), metadata=admin.metadata)
    )
    bad_order = await failure(
        stub.ListPatients(pb.ListPatientsRequest(order_by="name asc"), metadata=admin.metadata)
    )

    assert (len(default.patients), len(capped.patients)) == (50, 100)
    assert (negative.code, negative.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_size"])
    assert (bad_order.code, bad_order.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["order_by"])
