"""Events leave through the transactional outbox: one row per fact in the business
transaction, relayed to the Redis Stream in order, carrying ids and facts but no PHI."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, cast

import pytest
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.ports import free_port
from medstation.patient.v1 import patient_service_pb2 as pb
from medstation_platform.outbox import OutboxRelay
from medstation_platform.redis_connection import build_redis
from patient_record import bootstrap, tables
from patient_record.settings import PatientSettings
from services.patient_record.tests.integration.patient_client import PatientClient

if TYPE_CHECKING:
    from medstation.patient.v1.patient_service_pb2_grpc import PatientRecordServiceAsyncStub

# What redis-py returns for XREAD on a client that decodes responses.
StreamReplies = list[tuple[str, list[tuple[str, dict[str, str]]]]]
NAME = "Johnathan Smithers"
MRN_PREFIX = "MRN-PHI-"
BIRTH = "1961-07-04"
CONTENT = "S: chest pain radiating to the left arm"


async def _outbox(engine: AsyncEngine, patient_id: str) -> list[Any]:
    outbox = tables.outbox
    query = select(outbox).where(outbox.c.partition_key == patient_id).order_by(outbox.c.id)
    async with engine.connect() as connection:
        return list((await connection.execute(query)).all())


async def _publish_all(relay: OutboxRelay, engine: AsyncEngine, patient_id: str) -> None:
    """Relay batches until every row of the patient is out (older tests' rows go too)."""
    while any(row.published_at is None for row in await _outbox(engine, patient_id)):
        await relay.relay_once()


async def _stream(
    service: bootstrap.PatientService, stream: str, patient_id: str
) -> list[dict[str, str]]:
    entries = cast(list[tuple[str, dict[str, str]]], await service.redis.xrange(stream))
    return [fields for _, fields in entries if fields["partition_key"] == patient_id]


async def _next_event(
    service: bootstrap.PatientService, stream: str, patient_id: str
) -> dict[str, str]:
    """The first event about the patient, waiting for the relay to publish it."""
    last_id = "0-0"
    async with asyncio.timeout(20):
        while True:
            # Blocks briefly (below the client's socket timeout) for new entries.
            replies = cast(StreamReplies, await service.redis.xread({stream: last_id}, block=200))
            for _, entries in replies:
                for entry_id, fields in entries:
                    last_id = entry_id
                    if fields["partition_key"] == patient_id:
                        return fields


async def _lifecycle(client: PatientClient, stub: PatientRecordServiceAsyncStub, mrn: str) -> str:
    doctor, colleague = client.clinician(), client.clinician()
    patient = await client.create_patient(doctor, NAME, date_of_birth=BIRTH, mrn=mrn)
    note = await client.create_note(doctor, patient.id, CONTENT)
    await stub.UpdatePatient(
        pb.UpdatePatientRequest(patient=pb.Patient(id=patient.id, name="J. Smithers")),
        metadata=doctor.metadata,
    )
    await client.add_member(doctor, patient.id, colleague.user_id)
    await stub.DeleteNote(
        pb.DeleteNoteRequest(patient_id=patient.id, id=note.id), metadata=doctor.metadata
    )
    await client.create_note(doctor, patient.id, CONTENT)
    await client.create_note(doctor, patient.id, CONTENT)
    await stub.DeleteAllNotes(
        pb.DeleteAllNotesRequest(patient_id=patient.id), metadata=doctor.metadata
    )
    await client.create_note(doctor, patient.id, CONTENT)
    await stub.DeletePatient(pb.DeletePatientRequest(id=patient.id), metadata=doctor.metadata)
    return patient.id


EXPECTED = [
    "note.created",
    "patient.updated",
    "patient.updated",
    "note.deleted",
    "note.created",
    "note.created",
    "note.deleted",
    "note.deleted",
    "note.created",
    "patient.deleted",
]


async def test_each_change_is_an_outbox_row_relayed_in_order_without_phi(
    client: PatientClient,
    stub: PatientRecordServiceAsyncStub,
    service: bootstrap.PatientService,
    settings: PatientSettings,
    engine: AsyncEngine,
) -> None:
    mrn = f"{MRN_PREFIX}{free_port()}"
    patient_id = await _lifecycle(client, stub, mrn)

    rows = await _outbox(engine, patient_id)
    assert [row.event_type for row in rows] == EXPECTED
    await _publish_all(service.relay, engine, patient_id)
    published = await _stream(service, settings.events_stream, patient_id)

    assert [fields["event_type"] for fields in published] == EXPECTED
    assert [fields["event_id"] for fields in published] == [str(row.event_id) for row in rows]
    payloads = [json.loads(fields["payload"]) for fields in published]
    assert {payload["patient_id"] for payload in payloads} == {patient_id}
    assert payloads[-1]["note_count"] == 1
    assert payloads[1]["changed_fields"] == ["name"]
    assert payloads[2]["changed_fields"] == ["care_team"]
    everything = json.dumps(published)
    for phi in (NAME, "Smithers", mrn, BIRTH, CONTENT, "chest pain"):
        assert phi not in everything


async def test_the_relay_runs_beside_the_service_and_publishes_what_committed(
    client: PatientClient,
    service: bootstrap.PatientService,
    settings: PatientSettings,
) -> None:
    doctor = client.clinician()
    stopping = asyncio.Event()
    relay = asyncio.create_task(service.relay.run(stopping))
    try:
        patient = await client.create_patient(doctor)
        note = await client.create_note(doctor, patient.id)
        published = await _next_event(service, settings.events_stream, patient.id)
    finally:
        stopping.set()
        await relay

    payload = json.loads(published["payload"])
    assert (published["event_type"], payload["note_id"]) == ("note.created", note.id)


async def test_events_wait_out_a_redis_outage(
    client: PatientClient,
    service: bootstrap.PatientService,
    settings: PatientSettings,
    engine: AsyncEngine,
) -> None:
    doctor = client.clinician()
    patient = await client.create_patient(doctor)
    note = await client.create_note(doctor, patient.id)
    dead_redis = build_redis(f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.2)
    cut_off = OutboxRelay(
        service.engine,
        dead_redis,
        tables.outbox,
        stream=settings.events_stream,
        lock_id=settings.outbox_relay_lock_id,
    )

    try:
        with pytest.raises((RedisError, OSError)):
            await cut_off.relay_once()
    finally:
        await dead_redis.aclose()
    [row] = await _outbox(engine, patient.id)
    assert row.published_at is None  # nothing lost, nothing marked

    await _publish_all(service.relay, engine, patient.id)
    published = await _stream(service, settings.events_stream, patient.id)
    assert [json.loads(fields["payload"])["note_id"] for fields in published] == [note.id]
