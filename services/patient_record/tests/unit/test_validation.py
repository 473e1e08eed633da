"""Input the proto rules cannot judge: real dates, names, MRNs, note text and times."""

from __future__ import annotations

from datetime import timedelta

import pytest

from medstation_platform import errors
from medstation_platform.auth.principal import Principal
from patient_record import use_cases
from patient_record.domain import MrnAlreadyExists, parse_order_by
from patient_record.use_cases import NoteDetails, PageRequest, PatientChanges, Records
from services.patient_record.tests.unit import samples
from services.patient_record.tests.unit.fakes import FakeDatabase, FixedClock


def _fields(error: errors.DomainError) -> list[str]:
    return [violation.field for violation in error.violations]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"date_of_birth": "2023-02-30"}, "date_of_birth"),
        ({"date_of_birth": "2023-13-01"}, "date_of_birth"),
        ({"date_of_birth": "20230228"}, "date_of_birth"),
        ({"date_of_birth": "2023-W01-1"}, "date_of_birth"),
        ({"date_of_birth": "2099-01-01"}, "date_of_birth"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"sex": "SEX_FEMALE"}, "sex"),
        ({"mrn": "m" * 65}, "mrn"),
    ],
)
async def test_create_patient_rejects_bad_input_naming_the_field(
    overrides: dict[str, str],
    field: str,
    records: Records,
    database: FakeDatabase,
    doctor: Principal,
) -> None:
    with pytest.raises(errors.InvalidArgument) as raised:
        await samples.patient(records, doctor, samples.details(**overrides))

    assert _fields(raised.value) == [field]
    assert database.committed.patients == {}


async def test_names_are_trimmed_and_mrn_spaces_mean_none(
    records: Records, doctor: Principal
) -> None:
    patient = await samples.patient(
        records, doctor, samples.details(name="  Ada \t Lovelace ", mrn="   ")
    )

    assert (patient.name, patient.mrn) == ("Ada Lovelace", None)


async def test_a_patient_born_today_anywhere_on_earth_is_accepted(
    records: Records, doctor: Principal, clock: FixedClock
) -> None:
    # 23:00 UTC is already tomorrow in Kiribati (UTC+14).
    clock.now = clock.now.replace(hour=23)
    tomorrow_utc = (clock.now + timedelta(days=1)).date().isoformat()

    patient = await samples.patient(records, doctor, samples.details(date_of_birth=tomorrow_utc))

    assert patient.date_of_birth.isoformat() == tomorrow_utc


async def test_mrns_are_unique(records: Records, doctor: Principal, colleague: Principal) -> None:
    first = await samples.patient(records, doctor, samples.details(mrn="MRN-1"))
    other = await samples.patient(records, colleague, samples.details(mrn="MRN-2"))

    with pytest.raises(MrnAlreadyExists) as on_create:
        await samples.patient(records, colleague, samples.details(mrn="MRN-1"))
    with pytest.raises(MrnAlreadyExists) as on_update:
        await use_cases.update_patient(records, colleague, other.id, PatientChanges(mrn="MRN-1"))

    assert _fields(on_create.value) == ["mrn"]
    assert _fields(on_update.value) == ["patient.mrn"]
    assert on_create.value.reason == "MRN_ALREADY_EXISTS"
    assert first.mrn == "MRN-1"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (PatientChanges(date_of_birth="2023-02-30"), "patient.date_of_birth"),
        (PatientChanges(name=""), "patient.name"),
        (PatientChanges(sex="f"), "patient.sex"),
    ],
)
async def test_update_names_the_field_inside_the_patient(
    changes: PatientChanges, field: str, records: Records, doctor: Principal
) -> None:
    patient = await samples.patient(records, doctor)

    with pytest.raises(errors.InvalidArgument) as raised:
        await use_cases.update_patient(records, doctor, patient.id, changes)

    assert _fields(raised.value) == [field]


@pytest.mark.parametrize(
    ("content", "ahead", "field"),
    [
        ("", None, "content"),
        (" \n ", None, "content"),
        ("x" * 100_001, None, "content"),
        ("S: ok", timedelta(days=1, minutes=1), "note_time"),
    ],
)
async def test_create_note_rejects_bad_input_naming_the_field(
    content: str,
    ahead: timedelta | None,
    field: str,
    records: Records,
    doctor: Principal,
    clock: FixedClock,
) -> None:
    patient = await samples.patient(records, doctor)
    note_time = None if ahead is None else clock.now + ahead

    with pytest.raises(errors.InvalidArgument) as raised:
        await use_cases.create_note(
            records, doctor, patient.id, NoteDetails(content, note_time), request_id=""
        )

    assert _fields(raised.value) == [field]


async def test_note_time_defaults_to_now_and_may_be_a_day_ahead(
    records: Records, doctor: Principal, clock: FixedClock
) -> None:
    patient = await samples.patient(records, doctor)
    ahead = clock.now + timedelta(days=1)

    now_note = await samples.note(records, doctor, patient.id, content="x" * 100_000)
    later = await use_cases.create_note(
        records, doctor, patient.id, NoteDetails("S: ok", ahead), request_id=""
    )

    assert (now_note.note_time, later.note_time) == (clock.now, ahead)


@pytest.mark.parametrize("order_by", ["name asc", "age", "name  desc", "NAME", "id"])
def test_unknown_orders_name_order_by(order_by: str) -> None:
    with pytest.raises(errors.InvalidArgument) as raised:
        parse_order_by(order_by, searching=False)

    assert _fields(raised.value) == ["order_by"]


def test_the_default_order_is_by_name_or_by_relevance_when_searching() -> None:
    assert parse_order_by("", searching=False).spelling == "name"
    assert parse_order_by("", searching=True).spelling == "relevance desc"
    assert parse_order_by("created_at desc", searching=True).spelling == "created_at desc"


async def test_negative_page_sizes_name_page_size(records: Records, doctor: Principal) -> None:
    with pytest.raises(errors.InvalidArgument) as raised:
        await use_cases.list_patients(records, doctor, PageRequest(-1, ""), query="", order_by="")

    assert _fields(raised.value) == ["page_size"]
