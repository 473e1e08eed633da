"""The chat use cases wired to in-memory fakes: no database, Redis, network or model."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from chat.detached import DetachedTasks
from chat.domain import Model
from chat.use_cases import Chats, ConversationLimits
from medstation_llm.registry import OFFLINE, OFFLINE_MODEL
from medstation_platform.auth.principal import Principal
from medstation_platform.pagination import PageTokenCodec
from services.chat.tests.unit.fakes import (
    FakeDatabase,
    FakeModelSource,
    FakePatientRecords,
    FakeRateLimiter,
    FixedClock,
    ScriptedModel,
)

REPLY_TIMEOUT_SECONDS = 30.0


def person(role: str = "clinician") -> Principal:
    user_id = str(uuid.uuid4())
    return Principal(user_id=user_id, role=role, session_id=str(uuid.uuid4()), token="unused")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC))


@pytest.fixture
def database(clock: FixedClock) -> FakeDatabase:
    """Holds what the first migration puts there: the offline model, enabled."""
    database = FakeDatabase()
    now = clock()
    offline = Model(str(uuid.uuid4()), OFFLINE_MODEL, OFFLINE, 0.0, True, now, now)
    database.committed.models[offline.id] = offline
    return database


@pytest.fixture
def offline_model(database: FakeDatabase) -> Model:
    [model] = database.committed.models.values()
    return model


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
def patients() -> FakePatientRecords:
    return FakePatientRecords()


@pytest.fixture
def rate_limiter() -> FakeRateLimiter:
    return FakeRateLimiter()


@pytest.fixture
async def detached() -> AsyncIterator[DetachedTasks]:
    tasks = DetachedTasks()
    yield tasks
    await tasks.close(timeout_seconds=5)


@pytest.fixture
def limits() -> ConversationLimits:
    return ConversationLimits(history_max_messages=6, history_max_chars=1000, max_output_tokens=64)


@pytest.fixture
def chats(
    database: FakeDatabase,
    model: ScriptedModel,
    patients: FakePatientRecords,
    rate_limiter: FakeRateLimiter,
    detached: DetachedTasks,
    limits: ConversationLimits,
    clock: FixedClock,
) -> Chats:
    return Chats(
        unit_of_work=database.unit_of_work,
        language_models=FakeModelSource(model),
        patients=patients,
        rate_limiter=rate_limiter,
        detached=detached,
        page_tokens=PageTokenCodec(b"unit-test-page-token-secret"),
        limits=limits,
        reply_timeout=lambda: REPLY_TIMEOUT_SECONDS,
        clock=clock,
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
