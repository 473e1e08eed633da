"""Patient-record events: a deleted patient's summaries and jobs go; a changed record
marks its earlier summaries stale. Events come in batches, and every one may arrive twice."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from medstation_platform.auth.principal import Principal
from services.summary.tests.unit.conftest import chart
from services.summary.tests.unit.fakes import (
    FakeDatabase,
    FakePatients,
    FakeSummarizer,
    FixedClock,
)
from summary import use_cases
from summary.domain import PatientEvent, PatientNotFound
from summary.events import handle_patient_events
from summary.jobs import Outcome, process_job
from summary.use_cases import Summaries


def _event(event_type: str, patient_id: str, at: datetime, **payload: object) -> PatientEvent:
    return PatientEvent(str(uuid.uuid4()), event_type, patient_id, at, payload)


async def test_a_deleted_patients_summaries_and_jobs_are_purged_for_good(
    summaries: Summaries,
    patients: FakePatients,
    database: FakeDatabase,
    clock: FixedClock,
    doctor: Principal,
) -> None:
    record, other = chart("S: cough"), chart("S: fever")
    patients.add(record, doctor.user_id)
    patients.add(other, doctor.user_id)
    await use_cases.get_summary(summaries, doctor, record.patient_id)
    kept = await use_cases.get_summary(summaries, doctor, other.patient_id)
    job = await use_cases.create_summary_job(summaries, doctor, record.patient_id, request_id="")
    deleted = _event("patient.deleted", record.patient_id, clock(), note_count=1)
    await handle_patient_events(summaries, [deleted])
    await handle_patient_events(summaries, [deleted])  # delivered again
    assert list(database.committed.summaries) == [kept.id]
    assert job.id not in database.committed.jobs
    assert await process_job(summaries, job.id) == Outcome.SKIPPED
    # A request that read the chart just before the deletion stores nothing after it.
    with pytest.raises(PatientNotFound):
        await use_cases.get_summary(
            replace(summaries, summarizer=FakeSummarizer("fake", "another-model")),
            doctor,
            record.patient_id,
        )
    assert list(database.committed.summaries) == [kept.id]


@pytest.mark.parametrize(
    ("event_type", "payload", "stale"),
    [
        ("note.created", {"note_id": "n"}, True),
        ("note.deleted", {"note_id": "n"}, True),
        ("patient.updated", {"changed_fields": ["date_of_birth"]}, True),
        ("patient.updated", {"changed_fields": ["care_team"]}, False),
        ("patient.updated", {"changed_fields": ["name"]}, False),
    ],
)
async def test_changes_the_summary_states_mark_it_stale(
    summaries: Summaries,
    patients: FakePatients,
    database: FakeDatabase,
    clock: FixedClock,
    doctor: Principal,
    event_type: str,
    payload: dict[str, object],
    stale: bool,
) -> None:
    record = chart("S: cough")
    patients.add(record, doctor.user_id)
    summary = await use_cases.get_summary(summaries, doctor, record.patient_id)
    clock.advance(timedelta(seconds=5))
    event = _event(event_type, record.patient_id, clock(), **payload)
    await handle_patient_events(summaries, [event])
    await handle_patient_events(summaries, [event])
    assert database.committed.summaries[summary.id].stale is stale


async def test_a_late_event_leaves_summaries_written_after_it_fresh(
    summaries: Summaries,
    patients: FakePatients,
    database: FakeDatabase,
    clock: FixedClock,
    doctor: Principal,
) -> None:
    record = chart("S: cough")
    patients.add(record, doctor.user_id)
    created_at = clock()
    clock.advance(timedelta(seconds=5))
    summary = await use_cases.get_summary(summaries, doctor, record.patient_id)
    await handle_patient_events(summaries, [_event("note.created", record.patient_id, created_at)])
    assert database.committed.summaries[summary.id].stale is False


async def test_a_batch_marks_each_changed_patients_earlier_summaries_in_one_statement(
    summaries: Summaries,
    patients: FakePatients,
    database: FakeDatabase,
    clock: FixedClock,
    doctor: Principal,
) -> None:
    noted, edited, renamed = chart("S: cough"), chart("S: fever"), chart("S: rash")
    for record in (noted, edited, renamed):
        patients.add(record, doctor.user_id)
    before = clock()
    clock.advance(timedelta(seconds=5))
    written = {
        record.patient_id: await use_cases.get_summary(summaries, doctor, record.patient_id)
        for record in (noted, edited, renamed)
    }
    later = clock() + timedelta(seconds=5)
    batch = [
        _event("note.created", noted.patient_id, before),  # older than its summary...
        _event("note.deleted", edited.patient_id, later),
        _event("patient.updated", renamed.patient_id, later, changed_fields=["name"]),
        _event("note.created", noted.patient_id, later),  # ...this one is not
        _event("patient.updated", edited.patient_id, before, changed_fields=["sex"]),
    ]
    await handle_patient_events(summaries, batch)
    stale = {patient: database.committed.summaries[s.id].stale for patient, s in written.items()}
    assert stale == {noted.patient_id: True, edited.patient_id: True, renamed.patient_id: False}
    assert database.stale_marks == [{noted.patient_id: later, edited.patient_id: later}]


@pytest.mark.parametrize("deleted_first", [True, False])
async def test_a_patient_deleted_in_the_batch_is_purged_whatever_its_other_events(
    summaries: Summaries,
    patients: FakePatients,
    database: FakeDatabase,
    clock: FixedClock,
    doctor: Principal,
    deleted_first: bool,
) -> None:
    gone, kept = chart("S: cough"), chart("S: fever")
    for record in (gone, kept):
        patients.add(record, doctor.user_id)
    await use_cases.get_summary(summaries, doctor, gone.patient_id)
    fresh = await use_cases.get_summary(summaries, doctor, kept.patient_id)
    clock.advance(timedelta(seconds=5))
    deletion = _event("patient.deleted", gone.patient_id, clock())
    notes = [_event("note.created", record.patient_id, clock()) for record in (gone, kept)]
    batch = [deletion, *notes] if deleted_first else [*notes, deletion]
    await handle_patient_events(summaries, batch)
    assert list(database.committed.summaries) == [fresh.id]
    assert database.committed.summaries[fresh.id].stale is True
    assert gone.patient_id in database.committed.deleted
    assert database.stale_marks == [{kept.patient_id: clock()}]


async def test_a_batch_with_nothing_to_mark_sends_no_statement(
    summaries: Summaries, database: FakeDatabase, clock: FixedClock
) -> None:
    renamed = _event("patient.updated", str(uuid.uuid4()), clock(), changed_fields=["name"])
    await handle_patient_events(summaries, [renamed])
    await handle_patient_events(summaries, [])
    assert database.stale_marks == []
