"""StreamMessage: pieces of the reply as they come, then the stored pair; a client that
goes away mid-reply still leaves the complete pair, and failures come first when they can."""

from __future__ import annotations

import asyncio

import pytest

from chat import use_cases
from chat.detached import DetachedTasks
from chat.domain import Exchange, Model
from chat.use_cases import Chats, StreamItem
from medstation_llm.errors import ModelUnavailable
from medstation_platform.auth.principal import Principal
from services.chat.tests.unit import samples
from services.chat.tests.unit.fakes import FakeDatabase, ScriptedModel


async def test_the_reply_streams_in_pieces_then_the_stored_pair(
    chats: Chats, doctor: Principal, offline_model: Model, model: ScriptedModel
) -> None:
    chat = await samples.chat(chats, doctor, offline_model)
    model.reply = "Start with lisinopril 10 mg."

    items = [item async for item in use_cases.stream_message(chats, doctor, chat.id, "ACE?")]

    *pieces, last = items
    assert len(pieces) > 1
    assert all(isinstance(piece, str) for piece in pieces)
    assert "".join(str(piece) for piece in pieces) == model.reply
    assert isinstance(last, Exchange)
    assert last.assistant_message.content == model.reply
    listed = await use_cases.list_messages(chats, doctor, chat.id, samples.FIRST_PAGE)
    assert listed.items == [last.user_message, last.assistant_message]


async def test_a_client_leaving_mid_stream_still_leaves_the_whole_pair(
    chats: Chats,
    doctor: Principal,
    offline_model: Model,
    model: ScriptedModel,
    database: FakeDatabase,
    detached: DetachedTasks,
) -> None:
    chat = await samples.chat(chats, doctor, offline_model)
    model.reply = "A long answer that takes a while to write."
    model.gate = asyncio.Event()
    stream = use_cases.stream_message(chats, doctor, chat.id, "a slow question")
    first = await anext(stream)

    await stream.aclose()  # the RPC is cancelled: the client went away
    model.gate.set()
    await detached.wait()

    assert first == model.reply[: model.chunk]
    stored = database.messages_of(chat.id)
    assert [(m.role, m.content) for m in stored] == [
        ("user", "a slow question"),
        ("assistant", model.reply),
    ]


async def test_a_cancelled_send_message_still_leaves_the_whole_pair(
    chats: Chats,
    doctor: Principal,
    offline_model: Model,
    model: ScriptedModel,
    database: FakeDatabase,
    detached: DetachedTasks,
) -> None:
    chat = await samples.chat(chats, doctor, offline_model)
    model.gate = asyncio.Event()
    rpc = asyncio.create_task(samples.send(chats, doctor, chat.id, "a slow question"))
    await model.asked.wait()

    rpc.cancel()
    model.gate.set()
    await detached.wait()

    with pytest.raises(asyncio.CancelledError):
        await rpc
    assert [m.role for m in database.messages_of(chat.id)] == ["user", "assistant"]


async def test_a_model_failure_arrives_before_any_piece(
    chats: Chats,
    doctor: Principal,
    offline_model: Model,
    model: ScriptedModel,
    database: FakeDatabase,
) -> None:
    chat = await samples.chat(chats, doctor, offline_model)
    model.fail_with = ModelUnavailable()
    received: list[StreamItem] = []

    with pytest.raises(ModelUnavailable):
        await samples.drain(use_cases.stream_message(chats, doctor, chat.id, "hello"), received)

    assert received == []
    assert database.messages_of(chat.id) == []


async def test_a_model_failing_mid_reply_ends_the_stream_and_stores_nothing(
    chats: Chats,
    doctor: Principal,
    offline_model: Model,
    model: ScriptedModel,
    database: FakeDatabase,
) -> None:
    chat = await samples.chat(chats, doctor, offline_model)
    model.reply = "This reply will break off."
    model.fail_with, model.fail_after = ModelUnavailable(), 2
    received: list[StreamItem] = []

    with pytest.raises(ModelUnavailable):
        await samples.drain(use_cases.stream_message(chats, doctor, chat.id, "hello"), received)

    assert received == ["This ", "reply"]
    assert database.messages_of(chat.id) == []
