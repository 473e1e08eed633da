"""Care teams decide who sees a patient; everyone else is told it does not exist."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from medstation_platform.auth.principal import Principal
from medstation_platform.pagination import Page
from patient_record import use_cases
from patient_record.domain import AdminRequired, Patient, PatientNotFound
from patient_record.use_cases import NoteDetails, PageRequest, PatientChanges, Records
from services.patient_record.tests.unit import samples
from services.patient_record.tests.unit.conftest import person
from services.patient_record.tests.unit.fakes import FakeDatabase

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
FIRST_PAGE = PageRequest(page_size=0, page_token="")
Call = Callable[[Records, Principal, str, str], Awaitable[object]]

# Every use case that names a patient, called with (records, caller, patient id, note id).
PATIENT_PATHS: dict[str, Call] = {
    "get_patient": lambda r, p, pid, nid: use_cases.get_patient(r, p, pid),
    "update_patient": lambda r, p, pid, nid: use_cases.update_patient(
        r, p, pid, PatientChanges(name="Someone Else")
    ),
    "add_care_team_member": lambda r, p, pid, nid: use_cases.add_care_team_member(
        r, p, pid, p.user_id
    ),
    "remove_care_team_member": lambda r, p, pid, nid: use_cases.remove_care_team_member(
        r, p, pid, p.user_id
    ),
    "create_note": lambda r, p, pid, nid: use_cases.create_note(
        r, p, pid, NoteDetails("S: intruder", None), request_id=""
    ),
    "list_notes": lambda r, p, pid, nid: use_cases.list_notes(r, p, pid, FIRST_PAGE),
    "get_note": lambda r, p, pid, nid: use_cases.get_note(r, p, pid, nid),
    "delete_note": lambda r, p, pid, nid: use_cases.delete_note(r, p, pid, nid),
    "delete_all_notes": lambda r, p, pid, nid: use_cases.delete_all_notes(r, p, pid),
    "delete_patient": lambda r, p, pid, nid: use_cases.delete_patient(r, p, pid),
}


@pytest.mark.parametrize("path", sorted(PATIENT_PATHS))
async def test_outsiders_are_told_the_patient_does_not_exist(
    path: str, records: Records, database: FakeDatabase, doctor: Principal
) -> None:
    patient = await samples.patient(records, doctor)
    note = await samples.note(records, doctor, patient.id)
    before = database.committed.copy()

    with pytest.raises(PatientNotFound) as outsider:
        await PATIENT_PATHS[path](records, person(), patient.id, note.id)
    with pytest.raises(PatientNotFound) as nobody:
        await PATIENT_PATHS[path](records, person(), UNKNOWN_ID, note.id)

    assert (outsider.value.reason, outsider.value.message) == (
        nobody.value.reason,
        nobody.value.message,
    )
    assert database.committed == before  # nothing changed, nothing audited


@pytest.mark.parametrize("path", sorted(PATIENT_PATHS))
async def test_care_team_members_and_admins_may_use_every_path(
    path: str, records: Records, doctor: Principal, colleague: Principal, admin: Principal
) -> None:
    for caller in (colleague, admin):
        patient = await samples.patient(records, doctor)
        await use_cases.add_care_team_member(records, doctor, patient.id, colleague.user_id)
        note = await samples.note(records, doctor, patient.id)

        await PATIENT_PATHS[path](records, caller, patient.id, note.id)


async def test_list_shows_only_the_callers_patients_and_admins_everyone(
    records: Records, doctor: Principal, colleague: Principal, admin: Principal
) -> None:
    mine = await samples.patient(records, doctor)
    theirs = await samples.patient(records, colleague)

    def ids(page: Page[Patient]) -> set[str]:
        return {patient.id for patient in page.items}

    listing = {"query": "", "order_by": ""}
    assert ids(await use_cases.list_patients(records, doctor, FIRST_PAGE, **listing)) == {mine.id}
    everyone = await use_cases.list_patients(records, admin, FIRST_PAGE, **listing)
    assert ids(everyone) == {mine.id, theirs.id}


async def test_a_removed_member_can_no_longer_read_the_patient(
    records: Records, doctor: Principal, colleague: Principal
) -> None:
    patient = await samples.patient(records, doctor)
    await use_cases.add_care_team_member(records, doctor, patient.id, colleague.user_id)
    await use_cases.get_patient(records, colleague, patient.id)
    await use_cases.remove_care_team_member(records, doctor, patient.id, colleague.user_id)

    with pytest.raises(PatientNotFound):
        await use_cases.get_patient(records, colleague, patient.id)


async def test_only_admins_read_the_audit_trail(
    records: Records, doctor: Principal, admin: Principal
) -> None:
    await samples.patient(records, doctor)

    with pytest.raises(AdminRequired):
        await use_cases.list_audit_events(records, doctor, FIRST_PAGE, patient_id="", actor_id="")
    page = await use_cases.list_audit_events(records, admin, FIRST_PAGE, patient_id="", actor_id="")
    assert [event.action for event in page.items] == ["patient.create"]
