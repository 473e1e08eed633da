"""A whole conversation with the offline model, as a client sees it over gRPC."""

from __future__ import annotations

import uuid

from google.protobuf import field_mask_pb2

from medstation.chat.v1 import chat_service_pb2 as pb
from services.chat.tests.integration.chat_client import ChatClient


async def test_a_clinician_holds_a_conversation(client: ChatClient) -> None:
    doctor = client.clinician()
    chat = await client.create_chat(doctor, title="Hypertension questions")

    first = await client.send(doctor, chat.id, "What is a normal blood pressure?")
    second = await client.send(doctor, chat.id, "And for someone over eighty?")

    for exchange in (first, second):
        assert exchange.user_message.role == "user"
        assert exchange.assistant_message.role == "assistant"
        assert exchange.assistant_message.content
        assert exchange.user_message.token_count > 0
        assert exchange.assistant_message.token_count > 0
        assert exchange.user_message.chat_id == exchange.assistant_message.chat_id == chat.id
    messages = await client.messages(doctor, chat.id)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "What is a normal blood pressure?"),
        ("assistant", first.assistant_message.content),
        ("user", "And for someone over eighty?"),
        ("assistant", second.assistant_message.content),
    ]
    assert list(messages) == [
        first.user_message,
        first.assistant_message,
        second.user_message,
        second.assistant_message,
    ]
    fetched = await client.stub.GetChat(pb.GetChatRequest(id=chat.id), metadata=doctor.metadata)
    assert fetched.title == "Hypertension questions"
    assert fetched.updated_at.ToDatetime() >= second.assistant_message.created_at.ToDatetime()


async def test_a_chat_is_renamed_and_listed_newest_first(client: ChatClient) -> None:
    doctor = client.clinician()
    older = await client.create_chat(doctor, title="older")
    newer = await client.create_chat(doctor, title="newer")

    renamed = await client.stub.UpdateChat(
        pb.UpdateChatRequest(
            chat=pb.Chat(id=older.id, title="renamed", model_id="ignored"),
            update_mask=field_mask_pb2.FieldMask(paths=["title"]),
        ),
        metadata=doctor.metadata,
    )
    first = await client.stub.ListChats(pb.ListChatsRequest(page_size=1), metadata=doctor.metadata)
    second = await client.stub.ListChats(
        pb.ListChatsRequest(page_size=1, page_token=first.next_page_token),
        metadata=doctor.metadata,
    )

    assert (renamed.title, renamed.model_id) == ("renamed", older.model_id)
    assert [c.id for c in first.chats] + [c.id for c in second.chats] == [newer.id, older.id]
    assert second.next_page_token == ""


async def test_a_retried_send_returns_the_first_pair(client: ChatClient) -> None:
    doctor = client.clinician()
    chat = await client.create_chat(doctor)
    request_id = str(uuid.uuid4())

    first = await client.send(doctor, chat.id, "hello", request_id=request_id)
    again = await client.send(doctor, chat.id, "hello", request_id=request_id)

    assert again == first
    assert len(await client.messages(doctor, chat.id)) == 2
