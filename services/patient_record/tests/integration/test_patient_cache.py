"""GetPatient's per-process cache: a hit saves building the record and nothing else.

Every read still checks access and writes its audit row in PostgreSQL, and the statement
that does it returns the row's version, against which the cached record is checked: so a
change made anywhere (another replica, a migration, an operator's SQL) shows in the very
next read, with nothing to invalidate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.rpc_failures import failure
from medstation.patient.v1 import patient_service_pb2 as pb
from patient_record import bootstrap
from patient_record.settings import PatientSettings
from services.patient_record.tests.integration.patient_client import PatientClient

if TYPE_CHECKING:
    from medstation.patient.v1.patient_service_pb2_grpc import PatientRecordServiceAsyncStub


CACHE_ENTRIES = 4


@pytest.fixture
def settings(settings: PatientSettings) -> PatientSettings:
    return msgspec.structs.replace(settings, patient_cache_entries=CACHE_ENTRIES)


def _reads(service: bootstrap.PatientService, result: str) -> float:
    value = service.registry.get_sample_value(
        "cache_requests_total", {"cache": "patient", "result": result}
    )
    return value or 0.0


async def test_a_second_read_is_a_hit_and_is_audited_all_the_same(
    client: PatientClient, stub: PatientRecordServiceAsyncStub, service: bootstrap.PatientService
) -> None:
    doctor, admin = client.clinician(), client.admin()
    patient = await client.create_patient(doctor, "Cached Once")
    get = pb.GetPatientRequest(id=patient.id)
    hits, misses = _reads(service, "hit"), _reads(service, "miss")

    first = await stub.GetPatient(get, metadata=doctor.metadata)
    second = await stub.GetPatient(get, metadata=doctor.metadata)

    assert first == second
    assert (_reads(service, "miss") - misses, _reads(service, "hit") - hits) == (1, 1)
    trail = await client.audit_trail(admin, patient_id=patient.id)
    assert [event.action for event in trail].count("patient.read") == 2


async def test_a_change_made_behind_the_services_back_shows_in_the_next_read(
    client: PatientClient,
    stub: PatientRecordServiceAsyncStub,
    service: bootstrap.PatientService,
    engine: AsyncEngine,
) -> None:
    """As another replica's write would: this process is told nothing, and needs not be."""
    doctor = client.clinician()
    patient = await client.create_patient(doctor, "Old Name")
    get = pb.GetPatientRequest(id=patient.id)
    await stub.GetPatient(get, metadata=doctor.metadata)
    await stub.GetPatient(get, metadata=doctor.metadata)  # held, and current
    misses = _reads(service, "miss")

    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE patients SET name = 'New Name' WHERE id = :id"), {"id": patient.id}
        )
    seen = await stub.GetPatient(get, metadata=doctor.metadata)

    assert seen.name == "New Name"
    assert _reads(service, "miss") - misses == 1


async def test_a_cached_patient_shows_care_team_changes_and_refuses_removed_members(
    client: PatientClient, stub: PatientRecordServiceAsyncStub
) -> None:
    owner, colleague = client.clinician(), client.clinician()
    patient = await client.create_patient(owner)
    get = pb.GetPatientRequest(id=patient.id)
    await client.add_member(owner, patient.id, colleague.user_id)
    await stub.GetPatient(get, metadata=colleague.metadata)

    await client.remove_member(owner, patient.id, colleague.user_id)
    seen_by_owner = await stub.GetPatient(get, metadata=owner.metadata)
    refused = await failure(stub.GetPatient(get, metadata=colleague.metadata))

    assert list(seen_by_owner.care_team) == [owner.user_id]
    assert refused.reason == "PATIENT_NOT_FOUND"


async def test_the_cache_keeps_no_more_patients_than_it_is_sized_for(
    client: PatientClient, stub: PatientRecordServiceAsyncStub, service: bootstrap.PatientService
) -> None:
    doctor = client.clinician()
    patients = [
        await client.create_patient(doctor, f"Patient {n}") for n in range(CACHE_ENTRIES + 1)
    ]
    hits = _reads(service, "hit")

    for patient in patients:
        await stub.GetPatient(pb.GetPatientRequest(id=patient.id), metadata=doctor.metadata)
    # The first ones were dropped to make room: reading them again misses.
    await stub.GetPatient(pb.GetPatientRequest(id=patients[0].id), metadata=doctor.metadata)

    assert _reads(service, "hit") == hits
