"""SendMessage: the model is asked first, then both messages are stored together — or,
when the model fails, nothing is; the model sees a bounded window of the conversation."""

from __future__ import annotations

import pytest

from chat import use_cases
from chat.domain import Model
from chat.use_cases import SYSTEM_PROMPT, Chats
from medstation_llm.errors import ModelTimeout, ModelUnavailable
from medstation_llm.types import ChatTurn
from medstation_platform import errors
from medstation_platform.auth.principal import Principal
from services.chat.tests.unit import samples
from services.chat.tests.unit.conftest import REPLY_TIMEOUT_SECONDS
from services.chat.tests.unit.fakes import FakeDatabase, ScriptedModel


async def test_a_message_is_stored_with_its_reply(
    chats: Chats, doctor: Principal, offline_model: Model, model: ScriptedModel
) -> None:
    chat = await samples.chat(chats, doctor, offline_model)
    model.reply = "Metformin is first line."

    exchange = await samples.send(chats, doctor, chat.id, "First line for type 2 diabetes?")

    user, assistant = exchange.user_message, exchange.assistant_message
    assert (user.role, user.content) == ("user", "First line for type 2 diabetes?")
    assert (assistant.role, assistant.content) == ("assistant", "Metformin is first line.")
    assert user.token_count == 8  # 32 characters, about four a token
    assert assistant.token_count == len(model.reply) // 4 + 1  # what the provider reported
    assert assistant.created_at > user.created_at
    listed = await use_cases.list_messages(chats, doctor, chat.id, samples.FIRST_PAGE)
    assert listed.items == [user, assistant]
    updated = await use_cases.get_chat(chats, doctor, chat.id)
    assert updated.updated_at == assistant.created_at


async def test_the_model_is_asked_with_the_chats_model_and_a_deadline(
    chats: Chats, doctor: Principal, admin: Principal, model: ScriptedModel
) -> None:
    chosen = await samples.model(chats, admin, "offline-large", provider="offline")
    chat = await samples.chat(chats, doctor, chosen)

    await samples.send(chats, doctor, chat.id, "hello")

    [request] = model.requests
    assert request.model == "offline-large"
    assert request.timeout_seconds == REPLY_TIMEOUT_SECONDS
    assert request.system == SYSTEM_PROMPT
    assert request.patient is None
    assert list(request.messages) == [ChatTurn("user", "hello")]


@pytest.mark.parametrize("failure", [ModelUnavailable(), ModelTimeout()])
async def test_a_failed_model_call_stores_nothing(
    chats: Chats,
    doctor: Principal,
    offline_model: Model,
    model: ScriptedModel,
    database: FakeDatabase,
    failure: errors.DomainError,
) -> None:
    chat = await samples.chat(chats, doctor, offline_model)
    model.fail_with = failure

    with pytest.raises(type(failure)):
        await samples.send(chats, doctor, chat.id, "will this be lost?")

    assert database.messages_of(chat.id) == []


async def test_a_provider_that_is_not_configured_is_unavailable(
    chats: Chats, doctor: Principal, admin: Principal, database: FakeDatabase
) -> None:
    remote = await samples.model(chats, admin, "gpt-4o", provider="openai")
    chat = await samples.chat(chats, doctor, remote)

    with pytest.raises(errors.Unavailable) as raised:
        await samples.send(chats, doctor, chat.id, "hello")

    assert raised.value.reason == "MODEL_NOT_CONFIGURED"
    assert database.messages_of(chat.id) == []


async def test_the_model_sees_a_bounded_window_of_the_conversation(
    chats: Chats, doctor: Principal, offline_model: Model, model: ScriptedModel
) -> None:
    chat = await samples.chat(chats, doctor, offline_model)
    model.reply = "ok"
    for number in range(5):
        await samples.send(chats, doctor, chat.id, f"question {number}")

    await samples.send(chats, doctor, chat.id, "the last question")

    # history_max_messages is 6 in these tests: the three newest exchanges, then the new one.
    turns = [(turn.role, turn.content) for turn in model.requests[-1].messages]
    assert turns == [
        ("user", "question 2"),
        ("assistant", "ok"),
        ("user", "question 3"),
        ("assistant", "ok"),
        ("user", "question 4"),
        ("assistant", "ok"),
        ("user", "the last question"),
    ]


async def test_long_history_is_cut_to_the_character_budget(
    chats: Chats, doctor: Principal, offline_model: Model, model: ScriptedModel
) -> None:
    chat = await samples.chat(chats, doctor, offline_model)
    model.reply = "r" * 100
    await samples.send(chats, doctor, chat.id, "a" * 700)
    await samples.send(chats, doctor, chat.id, "b" * 300)

    await samples.send(chats, doctor, chat.id, "c")

    # The budget is 1000 characters: the 700-character question no longer fits, and its
    # answer is dropped too rather than shown without its question.
    turns = [turn.content for turn in model.requests[-1].messages]
    assert turns == ["b" * 300, "r" * 100, "c"]


@pytest.mark.parametrize("content", ["   ", "\n\t", "nul\x00byte", "x" * 32_001])
async def test_unusable_content_is_refused_naming_the_field(
    chats: Chats, doctor: Principal, offline_model: Model, model: ScriptedModel, content: str
) -> None:
    chat = await samples.chat(chats, doctor, offline_model)

    with pytest.raises(errors.InvalidArgument) as raised:
        await samples.send(chats, doctor, chat.id, content)

    assert [v.field for v in raised.value.violations] == ["content"]
    assert model.requests == []
