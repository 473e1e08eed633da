"""Each user may send so many messages per window; refusals cost nothing."""

from __future__ import annotations

import pytest

from chat import use_cases
from chat.domain import Model, RateLimited
from chat.use_cases import Chats
from medstation_platform import errors
from medstation_platform.auth.principal import Principal
from services.chat.tests.unit import samples
from services.chat.tests.unit.fakes import FakeDatabase, FakeRateLimiter, ScriptedModel


async def test_a_user_sending_too_fast_is_told_to_slow_down(
    chats: Chats,
    doctor: Principal,
    colleague: Principal,
    offline_model: Model,
    model: ScriptedModel,
    database: FakeDatabase,
    rate_limiter: FakeRateLimiter,
) -> None:
    rate_limiter.limit = 2
    chat = await samples.chat(chats, doctor, offline_model)
    await samples.send(chats, doctor, chat.id, "one")
    await samples.send(chats, doctor, chat.id, "two")

    with pytest.raises(errors.ResourceExhausted) as sent:
        await samples.send(chats, doctor, chat.id, "three")
    with pytest.raises(RateLimited):
        await samples.drain(use_cases.stream_message(chats, doctor, chat.id, "four"), [])

    assert sent.value.reason == "RATE_LIMITED"
    assert "too many messages" in sent.value.message
    assert len(model.requests) == 2
    assert len(database.messages_of(chat.id)) == 4
    # Another user's allowance is their own.
    theirs = await samples.chat(chats, colleague, offline_model)
    await samples.send(chats, colleague, theirs.id, "hello")
