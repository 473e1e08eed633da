"""A chat exists only for its creator: everyone else, admins included, gets NOT_FOUND."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from chat import use_cases
from chat.domain import ChatNotFound, Model
from chat.use_cases import Chats
from medstation_platform.auth.principal import Principal
from services.chat.tests.unit import samples
from services.chat.tests.unit.conftest import person
from services.chat.tests.unit.fakes import FakeDatabase, ScriptedModel

Path = Callable[[Chats, Principal, str], Awaitable[object]]


async def _stream(chats: Chats, principal: Principal, chat_id: str) -> None:
    await samples.drain(use_cases.stream_message(chats, principal, chat_id, "hello?"), [])


PATHS: list[tuple[str, Path]] = [
    ("GetChat", lambda c, p, i: use_cases.get_chat(c, p, i)),
    ("UpdateChat", lambda c, p, i: use_cases.update_chat(c, p, i, title="mine now")),
    ("ListMessages", lambda c, p, i: use_cases.list_messages(c, p, i, samples.FIRST_PAGE)),
    ("SendMessage", lambda c, p, i: samples.send(c, p, i, "hello?")),
    ("SendMessage+request_id", lambda c, p, i: samples.send(c, p, i, "hi", request_id=i)),
    ("StreamMessage", _stream),
    ("DeleteChat", lambda c, p, i: use_cases.delete_chat(c, p, i)),
]


@pytest.mark.parametrize("role", ["clinician", "admin"])
@pytest.mark.parametrize(("name", "path"), PATHS, ids=[name for name, _ in PATHS])
async def test_another_user_cannot_reach_a_chat(
    chats: Chats,
    doctor: Principal,
    offline_model: Model,
    database: FakeDatabase,
    model: ScriptedModel,
    role: str,
    name: str,
    path: Path,
) -> None:
    chat = await samples.chat(chats, doctor, offline_model, title="Private")
    await samples.send(chats, doctor, chat.id, "my question")
    chat = await use_cases.get_chat(chats, doctor, chat.id)
    before = database.committed.copy()
    asked = len(model.requests)

    with pytest.raises(ChatNotFound):
        await path(chats, person(role), chat.id)

    assert database.committed == before
    assert len(model.requests) == asked
    assert await use_cases.get_chat(chats, doctor, chat.id) == chat


async def test_each_user_lists_only_their_own_chats(
    chats: Chats, doctor: Principal, colleague: Principal, admin: Principal, offline_model: Model
) -> None:
    mine = await samples.chat(chats, doctor, offline_model)
    theirs = await samples.chat(chats, colleague, offline_model)

    assert (await use_cases.list_chats(chats, doctor, samples.FIRST_PAGE)).items == [mine]
    assert (await use_cases.list_chats(chats, colleague, samples.FIRST_PAGE)).items == [theirs]
    assert (await use_cases.list_chats(chats, admin, samples.FIRST_PAGE)).items == []


async def test_search_finds_only_the_callers_messages(
    chats: Chats, doctor: Principal, colleague: Principal, offline_model: Model
) -> None:
    mine = await samples.chat(chats, doctor, offline_model)
    theirs = await samples.chat(chats, colleague, offline_model)
    await samples.send(chats, doctor, mine.id, "is warfarin safe with aspirin")
    await samples.send(chats, colleague, theirs.id, "warfarin dosing in elderly")

    found = await use_cases.search_messages(chats, doctor, "warfarin", samples.FIRST_PAGE)

    assert [m.content for m in found.items] == ["is warfarin safe with aspirin"]
