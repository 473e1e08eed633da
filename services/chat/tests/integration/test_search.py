"""SearchMessages: PostgreSQL full-text search over the caller's own messages in chats
that are not deleted, best match first, in stable pages."""

from __future__ import annotations

import secrets

import grpc

from devstack.rpc_failures import failure
from medstation.chat.v1 import chat_service_pb2 as pb
from services.chat.tests.integration.chat_client import ChatClient, FixedReply
from services.chat.tests.integration.conftest import StartChat


def _rare_word() -> str:
    return f"zyq{secrets.token_hex(4)}"


async def test_search_finds_a_rare_word_in_the_callers_messages_only(
    start_chat: StartChat,
) -> None:
    _, client = await start_chat(models=FixedReply())
    doctor, colleague = client.clinician(), client.clinician()
    word = _rare_word()
    mine = await client.create_chat(doctor)
    theirs = await client.create_chat(colleague)
    sent = await client.send(doctor, mine.id, f"Is {word} safe in pregnancy?")
    await client.send(doctor, mine.id, "Something unrelated")
    await client.send(colleague, theirs.id, f"Dosing of {word} in children?")

    found = await client.search(doctor, word)

    assert list(found) == [sent.user_message]
    assert [m.content for m in await client.search(colleague, word)] == [
        f"Dosing of {word} in children?"
    ]


async def test_search_understands_word_forms_and_phrases(start_chat: StartChat) -> None:
    _, client = await start_chat(models=FixedReply())
    doctor = client.clinician()
    word = _rare_word()
    chat = await client.create_chat(doctor)
    await client.send(doctor, chat.id, f"The patients were vomiting after {word}")

    assert len(await client.search(doctor, f"patient vomited {word}")) == 1
    assert len(await client.search(doctor, f'"vomiting after {word}"')) == 1
    assert await client.search(doctor, f"{word} -vomiting") == []


async def test_search_pages_are_stable_and_best_first(start_chat: StartChat) -> None:
    _, client = await start_chat(models=FixedReply())
    doctor = client.clinician()
    word = _rare_word()
    chat = await client.create_chat(doctor)
    for count in (1, 3, 2):
        await client.send(doctor, chat.id, " ".join([word] * count) + " tablets")

    seen = []
    request = pb.SearchMessagesRequest(query=word, page_size=2)
    while True:
        page = await client.stub.SearchMessages(request, metadata=doctor.metadata)
        seen += [m.content.count(word) for m in page.messages]
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token

    assert seen == [3, 2, 1]


async def test_a_blank_or_long_query_is_refused_naming_the_query(client: ChatClient) -> None:
    doctor = client.clinician()
    for query in ("", "   ", "x" * 201):
        failed = await failure(
            client.stub.SearchMessages(
                pb.SearchMessagesRequest(query=query), metadata=doctor.metadata
            )
        )
        assert (failed.code, failed.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["query"])
