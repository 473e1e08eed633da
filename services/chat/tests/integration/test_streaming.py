"""StreamMessage: reply chunks as they are written, then the stored pair; a client that
goes away mid-reply leaves the whole pair (or, past its deadline, nothing) — never half."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator

import grpc
import pytest

from chat.bootstrap import ChatService
from devstack.rpc_failures import failure_of
from medstation.chat.v1 import chat_service_pb2 as pb
from medstation_llm.errors import ModelTimeout, ModelUnavailable
from medstation_llm.model import LanguageModel
from medstation_llm.types import ChatRequest, Completion, StreamEvent, TextDelta
from services.chat.tests.integration.chat_client import ChatClient, eventually
from services.chat.tests.integration.conftest import StartChat

REPLY = ["A reply ", "written ", "slowly, ", "word ", "by ", "word."]


class GatedModel:
    """Streams REPLY, holding after the first piece until `gate` opens (or its time runs
    out, like a real provider's); `fail` makes it fail before writing anything."""

    provider = "offline"

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.fail = False

    async def complete(self, request: ChatRequest) -> Completion:
        raise NotImplementedError("the chat service streams")

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        if self.fail:
            raise ModelUnavailable()
        yield TextDelta(REPLY[0])
        try:
            async with asyncio.timeout(request.timeout_seconds):
                await self.gate.wait()
        except TimeoutError:
            raise ModelTimeout() from None
        for piece in REPLY[1:]:
            yield TextDelta(piece)
        yield Completion("".join(REPLY), "offline", request.model, 10, 6, 5)

    async def aclose(self) -> None:
        """Nothing to release."""


class GatedModels:
    def __init__(self, model: GatedModel) -> None:
        self.model = model

    def language_model(self, provider: str) -> LanguageModel:
        return self.model

    async def aclose(self) -> None:
        """Nothing to release."""


async def _read_all(
    call: AsyncIterable[pb.StreamMessageResponse], received: list[pb.StreamMessageResponse]
) -> None:
    async for response in call:
        received.append(response)


def _cancelled_streams(service: ChatService) -> float:
    value = service.registry.get_sample_value(
        "grpc_server_handled_total",
        {
            "grpc_service": "medstation.chat.v1.ChatService",
            "grpc_method": "StreamMessage",
            "grpc_code": "CANCELLED",
        },
    )
    return value or 0.0


async def test_the_reply_streams_in_chunks_then_the_stored_pair(client: ChatClient) -> None:
    doctor = client.clinician()
    chat = await client.create_chat(doctor)

    call = client.stub.StreamMessage(
        pb.StreamMessageRequest(chat_id=chat.id, content="Tell me about this chat."),
        metadata=doctor.metadata,
    )
    responses = [response async for response in call]

    *chunks, last = responses
    assert len(chunks) > 1
    assert all(r.WhichOneof("event") == "delta" for r in chunks)
    assert last.WhichOneof("event") == "completed"
    reply = last.completed.assistant_message
    assert "".join(r.delta for r in chunks) == reply.content
    assert last.completed.user_message.content == "Tell me about this chat."
    stored = await client.messages(doctor, chat.id)
    assert list(stored) == [last.completed.user_message, reply]


async def test_a_client_that_leaves_mid_stream_still_gets_the_whole_pair_stored(
    start_chat: StartChat,
) -> None:
    model = GatedModel()
    service, client = await start_chat(models=GatedModels(model))
    doctor = client.clinician()
    chat = await client.create_chat(doctor)
    call = client.stub.StreamMessage(
        pb.StreamMessageRequest(chat_id=chat.id, content="a slow question"),
        metadata=doctor.metadata,
    )
    first = await call.read()
    assert isinstance(first, pb.StreamMessageResponse)
    assert first.delta == REPLY[0]

    call.cancel()  # the client goes away mid-reply
    await eventually(lambda: _cancelled_streams(service) == 1)
    model.gate.set()
    await service.detached.wait()

    stored = await client.messages(doctor, chat.id)
    assert [(m.role, m.content) for m in stored] == [
        ("user", "a slow question"),
        ("assistant", "".join(REPLY)),
    ]


async def test_a_client_whose_deadline_passes_mid_stream_leaves_nothing(
    start_chat: StartChat,
) -> None:
    model = GatedModel()  # its gate never opens: the reply outlives the deadline
    service, client = await start_chat(models=GatedModels(model))
    doctor = client.clinician()
    chat = await client.create_chat(doctor)
    call = client.stub.StreamMessage(
        pb.StreamMessageRequest(chat_id=chat.id, content="a slow question"),
        metadata=doctor.metadata,
        timeout=1.0,
    )

    received: list[pb.StreamMessageResponse] = []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _read_all(call, received)
    await service.detached.wait()

    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert [r.delta for r in received] == [REPLY[0]]
    assert await client.messages(doctor, chat.id) == []


async def test_a_model_failure_comes_before_any_chunk(start_chat: StartChat) -> None:
    model = GatedModel()
    model.fail = True
    _, client = await start_chat(models=GatedModels(model))
    doctor = client.clinician()
    chat = await client.create_chat(doctor)
    call = client.stub.StreamMessage(
        pb.StreamMessageRequest(chat_id=chat.id, content="hello"), metadata=doctor.metadata
    )

    received: list[pb.StreamMessageResponse] = []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _read_all(call, received)

    failed = failure_of(raised.value)
    assert (failed.code, failed.reason) == (grpc.StatusCode.UNAVAILABLE, "MODEL_UNAVAILABLE")
    assert received == []
    assert await client.messages(doctor, chat.id) == []
