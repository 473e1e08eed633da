"""DeleteChat hides a chat and its messages everywhere, but keeps them stored."""

from __future__ import annotations

import asyncio

import pytest

from chat import use_cases
from chat.detached import DetachedTasks
from chat.domain import ChatNotFound, Model
from chat.use_cases import Chats
from medstation_platform.auth.principal import Principal
from services.chat.tests.unit import samples
from services.chat.tests.unit.fakes import FakeDatabase, ScriptedModel


async def test_a_deleted_chat_and_its_messages_disappear(
    chats: Chats, doctor: Principal, offline_model: Model
) -> None:
    kept = await samples.chat(chats, doctor, offline_model)
    gone = await samples.chat(chats, doctor, offline_model)
    await samples.send(chats, doctor, kept.id, "zanubrutinib interactions")
    await samples.send(chats, doctor, gone.id, "zanubrutinib dosing")

    await use_cases.delete_chat(chats, doctor, gone.id)

    listed = await use_cases.list_chats(chats, doctor, samples.FIRST_PAGE)
    assert [c.id for c in listed.items] == [kept.id]
    found = await use_cases.search_messages(chats, doctor, "zanubrutinib", samples.FIRST_PAGE)
    assert [m.content for m in found.items] == ["zanubrutinib interactions"]
    for hidden in (
        use_cases.get_chat(chats, doctor, gone.id),
        use_cases.list_messages(chats, doctor, gone.id, samples.FIRST_PAGE),
        samples.send(chats, doctor, gone.id, "anyone there?"),
        use_cases.update_chat(chats, doctor, gone.id, title="renamed"),
        use_cases.delete_chat(chats, doctor, gone.id),
    ):
        with pytest.raises(ChatNotFound):
            await hidden


async def test_a_deleted_chat_is_kept_for_retention(
    chats: Chats, doctor: Principal, offline_model: Model, database: FakeDatabase
) -> None:
    chat = await samples.chat(chats, doctor, offline_model)
    await samples.send(chats, doctor, chat.id, "a question")

    await use_cases.delete_chat(chats, doctor, chat.id)

    assert chat.id in database.committed.chats
    assert chat.id in database.committed.deleted
    assert len(database.messages_of(chat.id)) == 2


async def test_a_reply_finished_after_the_chat_was_deleted_is_not_stored(
    chats: Chats,
    doctor: Principal,
    offline_model: Model,
    database: FakeDatabase,
    model: ScriptedModel,
    detached: DetachedTasks,
) -> None:
    chat = await samples.chat(chats, doctor, offline_model)
    model.gate = asyncio.Event()
    stream = use_cases.stream_message(chats, doctor, chat.id, "slow question")
    assert isinstance(await anext(stream), str)

    await use_cases.delete_chat(chats, doctor, chat.id)
    model.gate.set()
    with pytest.raises(ChatNotFound):
        await samples.drain(stream, [])
    await detached.wait()

    assert database.messages_of(chat.id) == []
