"""The summary use cases wired to in-memory fakes: no database, Redis or network."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from medstation_platform.auth.principal import Principal
from medstation_platform.pagination import PageTokenCodec
from services.summary.tests.unit.fakes import (
    FakeDatabase,
    FakePatients,
    FakeQueue,
    FakeSummarizer,
    FixedClock,
)
from summary.credentials import CredentialSealer
from summary.domain import Chart, Note
from summary.use_cases import Policy, Summaries

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
NOW = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)


def person(role: str = "clinician") -> Principal:
    user_id = str(uuid.uuid4())
    return Principal(user_id=user_id, role=role, session_id=str(uuid.uuid4()), token=user_id)


def chart(*contents: str, born: date = date(1961, 7, 4), sex: str = "female") -> Chart:
    """A chart whose notes are a day apart, the first content the newest."""
    notes = tuple(
        Note(str(uuid.uuid4()), content, NOW - timedelta(days=1 + index))
        for index, content in enumerate(contents)
    )
    return Chart(str(uuid.uuid4()), born, sex, notes)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def database() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
def patients() -> FakePatients:
    return FakePatients()


@pytest.fixture
def summarizer() -> FakeSummarizer:
    return FakeSummarizer()


@pytest.fixture
def queue() -> FakeQueue:
    return FakeQueue()


@pytest.fixture
def policy() -> Policy:
    return Policy(
        job_timeout_seconds=5.0,
        job_max_attempts=3,
        job_lease_seconds=30.0,
        requeue_after_seconds=30.0,
        watch_poll_seconds=0.001,
        watch_max_seconds=5.0,
    )


@pytest.fixture
def summaries(
    database: FakeDatabase,
    patients: FakePatients,
    summarizer: FakeSummarizer,
    queue: FakeQueue,
    policy: Policy,
    clock: FixedClock,
) -> Summaries:
    return Summaries(
        unit_of_work=database.unit_of_work,
        patients=patients,
        summarizer=summarizer,
        queue=queue,
        sealer=CredentialSealer(b"unit-test-credentials-secret"),
        page_tokens=PageTokenCodec(b"unit-test-page-token-secret"),
        policy=policy,
        clock=clock,
        trace_context=lambda: {"traceparent": TRACEPARENT},
    )


@pytest.fixture
def doctor() -> Principal:
    return person()


@pytest.fixture
def outsider() -> Principal:
    return person()
