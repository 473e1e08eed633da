"""The worker follows the patient-record service's events: a deleted patient's summaries
and jobs are purged, a new note marks the summaries written before it stale. A read's
entries are handled together and acknowledged at once."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from redis.typing import EncodableT, FieldT
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from medstation.patient.v1 import patient_service_pb2 as patient_pb
from medstation.summary.v1 import summary_service_pb2 as pb
from medstation_platform.redis_connection import build_redis
from services.patient_record.tests.integration.patient_client import PatientClient
from services.summary.tests.integration.conftest import StartWorker
from services.summary.tests.integration.summary_client import (
    add_note,
    count_rows,
    create_job,
    pneumonia_patient,
    until_state,
)
from summary import tables
from summary.settings import SummarySettings

if TYPE_CHECKING:
    from medstation.summary.v1.summary_service_pb2_grpc import SummaryServiceAsyncStub


async def _eventually(check: Callable[[], Awaitable[bool]], within_seconds: float = 20) -> None:
    async with asyncio.timeout(within_seconds):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


async def test_a_deleted_patients_summaries_and_jobs_are_purged(
    patients: PatientClient,
    summaries: SummaryServiceAsyncStub,
    start_worker: StartWorker,
    engine: AsyncEngine,
) -> None:
    await start_worker()
    doctor = patients.clinician()
    deleted = await pneumonia_patient(patients, doctor)
    kept = await pneumonia_patient(patients, doctor)
    for chart in (deleted, kept):
        await summaries.GetSummary(
            pb.GetSummaryRequest(patient_id=chart.id), metadata=doctor.metadata
        )
    job = await create_job(summaries, doctor, deleted.id)
    await until_state(summaries, doctor, job.id)

    await patients.stub.DeletePatient(
        patient_pb.DeletePatientRequest(id=deleted.id), metadata=doctor.metadata
    )

    async def purged() -> bool:
        left = await count_rows(engine, tables.summaries, patient_id=deleted.id)
        return left + await count_rows(engine, tables.summary_jobs, patient_id=deleted.id) == 0

    await _eventually(purged)
    assert await count_rows(engine, tables.deleted_patients, patient_id=deleted.id) == 1
    assert await count_rows(engine, tables.summaries, patient_id=kept.id) == 1


async def test_a_new_note_marks_earlier_summaries_stale(
    patients: PatientClient,
    summaries: SummaryServiceAsyncStub,
    start_worker: StartWorker,
    engine: AsyncEngine,
) -> None:
    await start_worker()
    doctor = patients.clinician()
    patient = await pneumonia_patient(patients, doctor)
    summary = await summaries.GetSummary(
        pb.GetSummaryRequest(patient_id=patient.id), metadata=doctor.metadata
    )
    await add_note(patients, doctor, patient.id, datetime.now(UTC), "S: new cough")

    async def stale() -> bool:
        query = select(tables.summaries.c.stale).where(tables.summaries.c.id == summary.id)
        async with engine.connect() as connection:
            return bool(await connection.scalar(query))

    await _eventually(stale)


async def test_a_batch_of_mixed_events_is_handled_and_acknowledged_together(
    settings: SummarySettings, start_worker: StartWorker, engine: AsyncEngine, redis_url: str
) -> None:
    noted, also_noted, deleted, untouched = (str(uuid.uuid4()) for _ in range(4))
    changed_at = datetime.now(UTC)
    before, after = changed_at - timedelta(minutes=1), changed_at + timedelta(minutes=1)
    rows = {
        "noted": _summary_row(noted, before),
        "noted later": _summary_row(noted, after),
        "also noted": _summary_row(also_noted, before),
        "deleted": _summary_row(deleted, before),
        "untouched": _summary_row(untouched, before),
    }
    async with engine.begin() as connection:
        await connection.execute(insert(tables.summaries), list(rows.values()))
    entries = [
        _event_fields("note.created", noted, changed_at),
        _event_fields("note.created", also_noted, changed_at),
        _event_fields("patient.deleted", deleted, changed_at),
        {**_event_fields("note.created", untouched, changed_at), "created_at": "yesterday"},
    ]
    # A stream of this test's own (no patient service relays to it), filled before the
    # worker starts: one read takes all of it.
    stream = f"test.patient.events.{secrets.token_hex(6)}"
    redis = build_redis(redis_url, timeout_seconds=2)
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    try:
        last_id = [await redis.xadd(stream, fields) for fields in entries][-1]
        await start_worker(
            msgspec.structs.replace(settings, events_stream=stream),
            tracer=provider.get_tracer("summary.worker"),
        )

        async def acknowledged() -> bool:
            groups = await redis.xinfo_groups(stream)
            return any(
                (group["name"], group["last-delivered-id"], group["pending"])
                == (settings.events_group, last_id, 0)
                for group in groups
            )

        await _eventually(acknowledged)
    finally:
        await redis.delete(stream)
        await redis.aclose()

    stale = {name: await _is_stale(engine, row["id"]) for name, row in rows.items()}
    assert stale == {
        "noted": True,
        "noted later": False,
        "also noted": True,
        "deleted": None,
        "untouched": False,  # its event was malformed: dropped
    }
    assert await count_rows(engine, tables.deleted_patients, patient_id=deleted) == 1
    [batch] = [span for span in spans.get_finished_spans() if span.kind == SpanKind.CONSUMER]
    assert batch.name == "medstation.patient.events process"
    assert dict(batch.attributes or {}) == {
        "messaging.system": "redis",
        "messaging.destination.name": stream,
        "messaging.batch.message_count": 4,
    }
    linked = [format(link.context.trace_id, "032x") for link in batch.links]
    assert linked == [str(fields["traceparent"]).split("-")[1] for fields in entries]


def _summary_row(patient_id: str, generated_at: datetime) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "patient_id": patient_id,
        "fingerprint": secrets.token_hex(8),
        "text": "A 64-year-old woman treated for pneumonia.",
        "patient_age": 64,
        "note_count": 2,
        "provider": "offline",
        "model": "offline-1",
        "latency_ms": 1,
        "generated_at": generated_at,
        "stale": False,
    }


def _event_fields(event_type: str, patient_id: str, at: datetime) -> dict[FieldT, EncodableT]:
    """An entry as the patient-record service's outbox relay appends it."""
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "partition_key": patient_id,
        "payload": json.dumps({}),
        "created_at": at.isoformat(),
        "traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01",
    }


async def _is_stale(engine: AsyncEngine, summary_id: str) -> bool | None:
    """The summary's flag, or None once it is gone."""
    query = select(tables.summaries.c.stale).where(tables.summaries.c.id == summary_id)
    async with engine.connect() as connection:
        return await connection.scalar(query)
