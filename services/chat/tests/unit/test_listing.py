"""Every list is paginated with tokens bound to the list and the caller; chats newest
first, messages oldest first, search results best match first."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chat import use_cases
from chat.domain import Model
from chat.use_cases import Chats, PageRequest
from medstation_platform import errors
from medstation_platform.auth.principal import Principal
from services.chat.tests.unit import samples
from services.chat.tests.unit.fakes import FixedClock, ScriptedModel


async def test_chats_are_listed_newest_first_page_by_page(
    chats: Chats, doctor: Principal, offline_model: Model, clock: FixedClock
) -> None:
    created = []
    for number in range(5):
        clock.advance(timedelta(minutes=1))
        created.append(await samples.chat(chats, doctor, offline_model, title=f"chat {number}"))

    seen = []
    token = ""
    while True:
        page = await use_cases.list_chats(chats, doctor, PageRequest(2, token))
        seen += [chat.title for chat in page.items]
        token = page.next_page_token
        if not token:
            break

    assert seen == ["chat 4", "chat 3", "chat 2", "chat 1", "chat 0"]


async def test_messages_are_listed_oldest_first_page_by_page(
    chats: Chats, doctor: Principal, offline_model: Model, model: ScriptedModel
) -> None:
    chat = await samples.chat(chats, doctor, offline_model)
    model.reply = "noted"
    for number in range(3):
        await samples.send(chats, doctor, chat.id, f"note {number}")

    first = await use_cases.list_messages(chats, doctor, chat.id, PageRequest(4, ""))
    second = await use_cases.list_messages(
        chats, doctor, chat.id, PageRequest(4, first.next_page_token)
    )

    contents = [m.content for m in first.items + second.items]
    assert contents == ["note 0", "noted", "note 1", "noted", "note 2", "noted"]
    assert second.next_page_token == ""


async def test_search_pages_through_matches_best_first(
    chats: Chats, doctor: Principal, offline_model: Model, model: ScriptedModel
) -> None:
    chat = await samples.chat(chats, doctor, offline_model)
    model.reply = "ok"
    await samples.send(chats, doctor, chat.id, "gout")
    await samples.send(chats, doctor, chat.id, "gout gout gout")
    await samples.send(chats, doctor, chat.id, "gout gout")

    first = await use_cases.search_messages(chats, doctor, "gout", PageRequest(2, ""))
    second = await use_cases.search_messages(
        chats, doctor, "gout", PageRequest(2, first.next_page_token)
    )

    contents = [m.content for m in first.items + second.items]
    assert contents == ["gout gout gout", "gout gout", "gout"]
    # The token belongs to this query.
    with pytest.raises(errors.InvalidPageToken):
        await use_cases.search_messages(
            chats, doctor, "other", PageRequest(2, first.next_page_token)
        )


async def test_a_token_from_another_chat_or_caller_is_refused(
    chats: Chats,
    doctor: Principal,
    colleague: Principal,
    offline_model: Model,
    clock: FixedClock,
) -> None:
    for _ in range(2):
        clock.advance(timedelta(seconds=1))
        await samples.chat(chats, doctor, offline_model)
    await samples.chat(chats, colleague, offline_model)
    page = await use_cases.list_chats(chats, doctor, PageRequest(1, ""))

    with pytest.raises(errors.InvalidPageToken):
        await use_cases.list_chats(chats, colleague, PageRequest(1, page.next_page_token))
    with pytest.raises(errors.InvalidPageToken):
        await use_cases.list_chats(chats, doctor, PageRequest(1, "not-a-token"))


async def test_a_negative_page_size_is_refused(chats: Chats, doctor: Principal) -> None:
    with pytest.raises(errors.InvalidArgument) as raised:
        await use_cases.list_chats(chats, doctor, PageRequest(-1, ""))

    assert [v.field for v in raised.value.violations] == ["page_size"]


@pytest.mark.parametrize("query", ["", "   ", "x" * 201, "tab\x07bell"])
async def test_an_unusable_search_is_refused_naming_the_query(
    chats: Chats, doctor: Principal, query: str
) -> None:
    with pytest.raises(errors.InvalidArgument) as raised:
        await use_cases.search_messages(chats, doctor, query, samples.FIRST_PAGE)

    assert [v.field for v in raised.value.violations] == ["query"]


async def test_a_chat_is_renamed(
    chats: Chats, doctor: Principal, offline_model: Model, clock: FixedClock
) -> None:
    chat = await samples.chat(chats, doctor, offline_model, title="Untitled")

    renamed = await use_cases.update_chat(chats, doctor, chat.id, title="  Anticoagulation  ")
    unchanged = await use_cases.update_chat(chats, doctor, chat.id, title=None)

    assert renamed.title == "Anticoagulation"
    assert renamed.updated_at > chat.updated_at
    assert unchanged == renamed
    with pytest.raises(errors.InvalidArgument) as raised:
        await use_cases.update_chat(chats, doctor, chat.id, title="x" * 201)
    assert [v.field for v in raised.value.violations] == ["chat.title"]
