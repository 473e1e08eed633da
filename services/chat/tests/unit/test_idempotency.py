"""request_id makes SendMessage safe to retry (AIP-155): the first pair, asked once."""

from __future__ import annotations

import uuid

import pytest

from chat import use_cases
from chat.domain import IdempotencyKeyReused, Model
from chat.use_cases import Chats
from medstation_llm.errors import ModelUnavailable
from medstation_platform.auth.principal import Principal
from services.chat.tests.unit import samples
from services.chat.tests.unit.fakes import FakeDatabase, FakeRateLimiter, ScriptedModel


async def test_a_retried_message_returns_the_first_pair_without_asking_again(
    chats: Chats,
    doctor: Principal,
    offline_model: Model,
    model: ScriptedModel,
    database: FakeDatabase,
    rate_limiter: FakeRateLimiter,
) -> None:
    chat = await samples.chat(chats, doctor, offline_model)
    request_id = str(uuid.uuid4())

    first = await samples.send(chats, doctor, chat.id, "dose?", request_id=request_id)
    again = await samples.send(chats, doctor, chat.id, "dose?", request_id=request_id)

    assert again == first
    assert len(model.requests) == 1
    assert len(database.messages_of(chat.id)) == 2
    assert rate_limiter.counts[doctor.user_id] == 1  # a retry is not a new message


@pytest.mark.parametrize("other_chat", [False, True])
async def test_the_same_request_id_for_another_message_is_refused(
    chats: Chats, doctor: Principal, offline_model: Model, database: FakeDatabase, other_chat: bool
) -> None:
    chat = await samples.chat(chats, doctor, offline_model)
    elsewhere = await samples.chat(chats, doctor, offline_model) if other_chat else chat
    request_id = str(uuid.uuid4())
    await samples.send(chats, doctor, chat.id, "dose?", request_id=request_id)
    content = "dose?" if other_chat else "something else"

    with pytest.raises(IdempotencyKeyReused) as raised:
        await samples.send(chats, doctor, elsewhere.id, content, request_id=request_id)

    assert [v.field for v in raised.value.violations] == ["request_id"]
    assert len(database.committed.messages) == 2


async def test_request_ids_belong_to_their_caller(
    chats: Chats, doctor: Principal, colleague: Principal, offline_model: Model
) -> None:
    request_id = str(uuid.uuid4())
    mine = await samples.chat(chats, doctor, offline_model)
    theirs = await samples.chat(chats, colleague, offline_model)

    first = await samples.send(chats, doctor, mine.id, "hello", request_id=request_id)
    other = await samples.send(chats, colleague, theirs.id, "hello", request_id=request_id)

    assert other.user_message.id != first.user_message.id


async def test_a_failed_attempt_leaves_the_request_id_unused(
    chats: Chats, doctor: Principal, offline_model: Model, model: ScriptedModel
) -> None:
    chat = await samples.chat(chats, doctor, offline_model)
    request_id = str(uuid.uuid4())
    model.fail_with = ModelUnavailable()
    with pytest.raises(ModelUnavailable):
        await samples.send(chats, doctor, chat.id, "dose?", request_id=request_id)
    model.fail_with = None

    retried = await samples.send(chats, doctor, chat.id, "dose?", request_id=request_id)

    assert retried.assistant_message.content == model.reply
    listed = await use_cases.list_messages(chats, doctor, chat.id, samples.FIRST_PAGE)
    assert listed.items == [retried.user_message, retried.assistant_message]
