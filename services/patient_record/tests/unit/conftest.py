"""The patient-record use cases wired to in-memory fakes: no database, Redis or network."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from medstation_platform.auth.principal import Principal
from medstation_platform.pagination import PageTokenCodec
from patient_record.use_cases import Records
from services.patient_record.tests.unit.fakes import (
    FakeDatabase,
    FakeNoteInserts,
    FakePatientReads,
    FixedClock,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def person(role: str = "clinician") -> Principal:
    user_id = str(uuid.uuid4())
    return Principal(user_id=user_id, role=role, session_id=str(uuid.uuid4()), token="unused")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC))


@pytest.fixture
def database() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
def records(database: FakeDatabase, clock: FixedClock) -> Records:
    return Records(
        unit_of_work=database.unit_of_work,
        reads=FakePatientReads(database),
        new_notes=FakeNoteInserts(database),
        page_tokens=PageTokenCodec(b"unit-test-page-token-secret"),
        idempotency_secret=b"unit-test-idempotency-secret",
        clock=clock,
        trace_id=lambda: TRACE_ID,
    )


@pytest.fixture
def doctor() -> Principal:
    return person()


@pytest.fixture
def colleague() -> Principal:
    return person()


@pytest.fixture
def admin() -> Principal:
    return person("admin")
