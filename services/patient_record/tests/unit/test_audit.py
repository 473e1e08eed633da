"""Every read and change of a patient or note leaves its audit event."""

from __future__ import annotations

from datetime import timedelta

from medstation_platform.auth.principal import Principal
from patient_record import use_cases
from patient_record.domain import AuditEvent
from patient_record.use_cases import PageRequest, PatientChanges, Records
from services.patient_record.tests.unit import samples
from services.patient_record.tests.unit.conftest import TRACE_ID
from services.patient_record.tests.unit.fakes import FakeDatabase, FixedClock

FIRST_PAGE = PageRequest(page_size=0, page_token="")


def _trail(database: FakeDatabase) -> list[tuple[str, str | None]]:
    return [(event.action, event.note_id) for event in database.committed.audit]


async def test_each_use_case_records_what_it_did(
    records: Records, database: FakeDatabase, doctor: Principal, colleague: Principal
) -> None:
    patient = await samples.patient(records, doctor)
    await use_cases.get_patient(records, doctor, patient.id)
    await use_cases.update_patient(records, doctor, patient.id, PatientChanges(sex="other"))
    await use_cases.add_care_team_member(records, doctor, patient.id, colleague.user_id)
    await use_cases.remove_care_team_member(records, doctor, patient.id, colleague.user_id)
    note = await samples.note(records, doctor, patient.id)
    await use_cases.get_note(records, doctor, patient.id, note.id)
    await use_cases.list_notes(records, doctor, patient.id, FIRST_PAGE)
    await use_cases.delete_note(records, doctor, patient.id, note.id)
    await use_cases.list_notes(records, doctor, patient.id, FIRST_PAGE)
    await use_cases.delete_all_notes(records, doctor, patient.id)
    kept = await samples.note(records, doctor, patient.id)
    await use_cases.delete_patient(records, doctor, patient.id)

    assert _trail(database) == [
        ("patient.create", None),
        ("patient.read", None),
        ("patient.update", None),
        ("care_team.add", None),
        ("care_team.remove", None),
        ("note.create", note.id),
        ("note.read", note.id),
        ("note.list", note.id),
        ("note.delete", note.id),
        ("note.list", None),  # an empty page: the caller learned there are no notes
        ("note.delete", None),  # nothing to delete, but the attempt is on record
        ("note.create", kept.id),
        ("note.delete", kept.id),  # the patient's notes go with it, each on record
        ("patient.delete", None),
    ]
    assert {event.patient_id for event in database.committed.audit} == {patient.id}
    assert {event.actor_id for event in database.committed.audit} == {doctor.user_id}


async def test_events_carry_time_and_trace(
    records: Records, database: FakeDatabase, doctor: Principal, clock: FixedClock
) -> None:
    patient = await samples.patient(records, doctor)

    [event] = database.committed.audit

    assert event == AuditEvent(
        id=event.id,
        actor_id=doctor.user_id,
        action="patient.create",
        patient_id=patient.id,
        note_id=None,
        occurred_at=clock.now,
        trace_id=TRACE_ID,
    )


async def test_a_list_records_one_read_per_patient_shown(
    records: Records, database: FakeDatabase, doctor: Principal, admin: Principal
) -> None:
    shown = [await samples.patient(records, doctor) for _ in range(3)]
    database.committed.audit.clear()

    page = await use_cases.list_patients(
        records, admin, PageRequest(2, ""), query="", order_by="created_at"
    )

    assert [(e.action, e.patient_id, e.actor_id) for e in database.committed.audit] == [
        ("patient.list", patient.id, admin.user_id) for patient in page.items
    ]
    assert len(page.items) == 2
    assert {patient.id for patient in page.items} <= {patient.id for patient in shown}


async def test_admin_reads_are_recorded_like_anyone_elses(
    records: Records, database: FakeDatabase, doctor: Principal, admin: Principal
) -> None:
    patient = await samples.patient(records, doctor)
    note = await samples.note(records, doctor, patient.id)

    await use_cases.get_patient(records, admin, patient.id)
    await use_cases.get_note(records, admin, patient.id, note.id)

    by_admin = [
        (e.action, e.note_id) for e in database.committed.audit if e.actor_id == admin.user_id
    ]
    assert by_admin == [("patient.read", None), ("note.read", note.id)]


async def test_every_read_is_recorded(
    records: Records, database: FakeDatabase, doctor: Principal
) -> None:
    patient = await samples.patient(records, doctor)

    for _ in range(3):
        await use_cases.get_patient(records, doctor, patient.id)

    assert [action for action, _ in _trail(database)].count("patient.read") == 3


async def test_the_trail_pages_newest_first(
    records: Records, doctor: Principal, admin: Principal, clock: FixedClock
) -> None:
    patient = await samples.patient(records, doctor)
    for _ in range(4):
        clock.advance(timedelta(seconds=1))
        await use_cases.get_patient(records, doctor, patient.id)

    seen: list[AuditEvent] = []
    page = PageRequest(2, "")
    while True:
        result = await use_cases.list_audit_events(
            records, admin, page, patient_id=patient.id, actor_id=doctor.user_id
        )
        seen += result.items
        if not result.next_page_token:
            break
        page = PageRequest(2, result.next_page_token)

    assert [event.action for event in seen] == ["patient.read"] * 4 + ["patient.create"]
    times = [event.occurred_at for event in seen]
    assert times == sorted(times, reverse=True)
