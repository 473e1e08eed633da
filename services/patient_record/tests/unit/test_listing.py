"""ListPatients: orderings, fuzzy search, and page tokens bound to their list."""

from __future__ import annotations

from datetime import timedelta

import pytest

from medstation_platform import errors
from medstation_platform.auth.principal import Principal
from patient_record import use_cases
from patient_record.domain import Patient
from patient_record.use_cases import PageRequest, Records
from services.patient_record.tests.unit import samples
from services.patient_record.tests.unit.fakes import FixedClock

NAMES = ["Carol Danvers", "alan turing", "Bea Arthur", "Ada Lovelace", "Ada Lovelace"]
BIRTHS = ["1990-01-01", "1912-06-23", "1922-05-13", "1815-12-10", "1815-12-10"]


async def _walk(
    records: Records, caller: Principal, *, order_by: str = "", query: str = "", size: int = 2
) -> list[Patient]:
    seen: list[Patient] = []
    token = ""
    while True:
        page = await use_cases.list_patients(
            records, caller, PageRequest(size, token), query=query, order_by=order_by
        )
        assert len(page.items) <= size
        seen += page.items
        token = page.next_page_token
        if not token:
            return seen


@pytest.fixture
async def patients(records: Records, doctor: Principal, clock: FixedClock) -> list[Patient]:
    created = []
    for name, born in zip(NAMES, BIRTHS, strict=True):
        clock.advance(timedelta(seconds=1))
        sample = samples.details(name=name, date_of_birth=born)
        created.append(await samples.patient(records, doctor, sample))
    return created


@pytest.mark.parametrize(
    ("order_by", "field"),
    [
        ("", "name"),
        ("name desc", "name"),
        ("date_of_birth", "date_of_birth"),
        ("created_at desc", "created_at"),
    ],
)
async def test_pages_follow_the_order_with_id_breaking_ties(
    order_by: str, field: str, patients: list[Patient], records: Records, doctor: Principal
) -> None:
    seen = await _walk(records, doctor, order_by=order_by)

    expected = sorted(
        patients, key=lambda p: (getattr(p, field), p.id), reverse=order_by.endswith("desc")
    )
    assert [patient.id for patient in seen] == [patient.id for patient in expected]


async def test_search_ranks_the_closest_name_first(
    patients: list[Patient], records: Records, doctor: Principal
) -> None:
    seen = await _walk(records, doctor, query="Ada Lovelase")

    assert {patient.name for patient in seen} == {"Ada Lovelace"}


@pytest.mark.parametrize(
    "change",
    [
        {"order_by": "name desc"},
        {"query": "Ada"},
    ],
)
async def test_a_token_is_only_good_for_its_own_list(
    change: dict[str, str], patients: list[Patient], records: Records, doctor: Principal
) -> None:
    first = await use_cases.list_patients(
        records, doctor, PageRequest(1, ""), query="", order_by="name"
    )
    listing = {"query": "", "order_by": "name", **change}

    with pytest.raises(errors.InvalidPageToken):
        await use_cases.list_patients(
            records, doctor, PageRequest(1, first.next_page_token), **listing
        )


async def test_a_token_is_only_good_for_its_caller(
    patients: list[Patient], records: Records, doctor: Principal, admin: Principal
) -> None:
    first = await use_cases.list_patients(
        records, doctor, PageRequest(1, ""), query="", order_by=""
    )

    with pytest.raises(errors.InvalidPageToken) as raised:
        await use_cases.list_patients(
            records, admin, PageRequest(1, first.next_page_token), query="", order_by=""
        )

    assert [violation.field for violation in raised.value.violations] == ["page_token"]
