"""Care-team membership: who joins, who may change it, and that it is never empty."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from medstation_platform.auth.principal import Principal
from patient_record import use_cases
from patient_record.domain import LastCareTeamMember
from patient_record.use_cases import Records
from services.patient_record.tests.unit import samples
from services.patient_record.tests.unit.fakes import FakeDatabase, FixedClock


async def test_the_creator_joins_the_care_team(records: Records, doctor: Principal) -> None:
    patient = await samples.patient(records, doctor)

    assert patient.care_team == (doctor.user_id,)


async def test_members_add_and_remove_members(
    records: Records, doctor: Principal, colleague: Principal, clock: FixedClock
) -> None:
    patient = await samples.patient(records, doctor)
    third = str(uuid.uuid4())

    clock.advance(timedelta(minutes=5))
    added = await use_cases.add_care_team_member(records, doctor, patient.id, colleague.user_id)
    by_colleague = await use_cases.add_care_team_member(records, colleague, patient.id, third)
    removed = await use_cases.remove_care_team_member(
        records, colleague, patient.id, doctor.user_id
    )

    assert added.care_team == (doctor.user_id, colleague.user_id)
    assert added.updated_at == clock.now
    assert by_colleague.care_team == (doctor.user_id, colleague.user_id, third)
    assert removed.care_team == (colleague.user_id, third)


async def test_the_last_member_cannot_be_removed(
    records: Records, database: FakeDatabase, doctor: Principal, admin: Principal
) -> None:
    patient = await samples.patient(records, doctor)
    before = database.committed.copy()

    for caller in (doctor, admin):
        with pytest.raises(LastCareTeamMember):
            await use_cases.remove_care_team_member(records, caller, patient.id, doctor.user_id)

    assert database.committed == before


async def test_changes_that_change_nothing_are_not_events(
    records: Records,
    database: FakeDatabase,
    doctor: Principal,
    colleague: Principal,
) -> None:
    patient = await samples.patient(records, doctor)

    again = await use_cases.add_care_team_member(records, doctor, patient.id, doctor.user_id)
    absent = await use_cases.remove_care_team_member(records, doctor, patient.id, colleague.user_id)

    assert again == absent == patient
    assert database.committed.events == []
    actions = [event.action for event in database.committed.audit]
    assert actions == ["patient.create", "care_team.add", "care_team.remove"]


async def test_a_read_after_a_membership_change_shows_the_new_team(
    records: Records, doctor: Principal, colleague: Principal
) -> None:
    patient = await samples.patient(records, doctor)
    await use_cases.get_patient(records, doctor, patient.id)

    await use_cases.add_care_team_member(records, doctor, patient.id, colleague.user_id)
    seen = await use_cases.get_patient(records, doctor, patient.id)

    assert seen.care_team == (doctor.user_id, colleague.user_id)
