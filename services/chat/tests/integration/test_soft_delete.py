"""DeleteChat is a soft delete: the chat and its messages vanish from every list and from
search, and stay in the database for retention."""

from __future__ import annotations

import secrets

import grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.rpc_failures import failure
from medstation.chat.v1 import chat_service_pb2 as pb
from services.chat.tests.integration.chat_client import FixedReply
from services.chat.tests.integration.conftest import StartChat


async def test_a_deleted_chat_vanishes_but_is_kept(
    start_chat: StartChat, engine: AsyncEngine
) -> None:
    _, client = await start_chat(models=FixedReply())
    doctor = client.clinician()
    word = f"zyq{secrets.token_hex(4)}"
    kept = await client.create_chat(doctor)
    gone = await client.create_chat(doctor)
    await client.send(doctor, kept.id, f"{word} in the kept chat")
    await client.send(doctor, gone.id, f"{word} in the deleted chat")

    await client.stub.DeleteChat(pb.DeleteChatRequest(id=gone.id), metadata=doctor.metadata)

    listed = await client.stub.ListChats(pb.ListChatsRequest(), metadata=doctor.metadata)
    assert [c.id for c in listed.chats] == [kept.id]
    assert [m.content for m in await client.search(doctor, word)] == [f"{word} in the kept chat"]
    for call in (
        client.stub.GetChat(pb.GetChatRequest(id=gone.id), metadata=doctor.metadata),
        client.messages(doctor, gone.id),
        client.send(doctor, gone.id, "hello?"),
        client.stub.DeleteChat(pb.DeleteChatRequest(id=gone.id), metadata=doctor.metadata),
    ):
        failed = await failure(call)
        assert (failed.code, failed.reason) == (grpc.StatusCode.NOT_FOUND, "CHAT_NOT_FOUND")
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT c.deleted_at IS NOT NULL, count(m.id) FROM chats c"
                    " JOIN messages m ON m.chat_id = c.id WHERE c.id = :id GROUP BY c.id"
                ),
                {"id": gone.id},
            )
        ).one()
    assert tuple(row) == (True, 2)
