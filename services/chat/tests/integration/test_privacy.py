"""Chats are private: another clinician, or an admin, gets NOT_FOUND on every path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import grpc
import pytest

from devstack.rpc_failures import failure
from medstation.chat.v1 import chat_service_pb2 as pb
from services.chat.tests.integration.chat_client import ChatClient
from services.patient_record.tests.integration.patient_client import Caller

if TYPE_CHECKING:
    from medstation.chat.v1.chat_service_pb2_grpc import ChatServiceAsyncStub

Path = Callable[["ChatServiceAsyncStub", Caller, str], Awaitable[object]]


async def _stream(stub: ChatServiceAsyncStub, caller: Caller, chat_id: str) -> None:
    request = pb.StreamMessageRequest(chat_id=chat_id, content="hi")
    async for _ in stub.StreamMessage(request, metadata=caller.metadata):
        pass


PATHS: list[tuple[str, Path]] = [
    ("GetChat", lambda s, c, i: s.GetChat(pb.GetChatRequest(id=i), metadata=c.metadata)),
    (
        "UpdateChat",
        lambda s, c, i: s.UpdateChat(
            pb.UpdateChatRequest(chat=pb.Chat(id=i, title="mine")), metadata=c.metadata
        ),
    ),
    (
        "ListMessages",
        lambda s, c, i: s.ListMessages(pb.ListMessagesRequest(chat_id=i), metadata=c.metadata),
    ),
    (
        "SendMessage",
        lambda s, c, i: s.SendMessage(
            pb.SendMessageRequest(chat_id=i, content="hi"), metadata=c.metadata
        ),
    ),
    ("StreamMessage", _stream),
    ("DeleteChat", lambda s, c, i: s.DeleteChat(pb.DeleteChatRequest(id=i), metadata=c.metadata)),
]


@pytest.mark.parametrize("role", ["clinician", "admin"])
async def test_nobody_else_reaches_a_chat(client: ChatClient, role: str) -> None:
    doctor = client.clinician()
    chat = await client.create_chat(doctor, title="private")
    await client.send(doctor, chat.id, "my question")
    other = client.clinician() if role == "clinician" else client.admin()

    for name, path in PATHS:
        failed = await failure(path(client.stub, other, chat.id))
        assert (failed.code, failed.reason) == (grpc.StatusCode.NOT_FOUND, "CHAT_NOT_FOUND"), name

    mine = await client.stub.GetChat(pb.GetChatRequest(id=chat.id), metadata=doctor.metadata)
    assert mine.title == "private"
    assert len(await client.messages(doctor, chat.id)) == 2
    listed = await client.stub.ListChats(pb.ListChatsRequest(), metadata=other.metadata)
    assert chat.id not in [c.id for c in listed.chats]
