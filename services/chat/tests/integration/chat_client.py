"""Calling the chat service the way a client does: over gRPC with a bearer token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from medstation.chat.v1 import chat_service_pb2 as pb
from medstation_llm.model import LanguageModel
from medstation_llm.types import ChatRequest, Completion, StreamEvent, TextDelta
from services.patient_record.tests.integration.patient_client import Caller, TokenIssuer

if TYPE_CHECKING:
    from medstation.chat.v1.chat_service_pb2_grpc import ChatServiceAsyncStub

OFFLINE_MODEL = "medstation-offline"


async def eventually(check: Callable[[], bool], *, attempts: int = 1000) -> None:
    """Waits (up to about ten seconds) for something another task makes true."""
    for _ in range(attempts):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never became true")


class FixedReply:
    """A model that answers every question with the same words, so that what a test finds
    in search is what the test wrote."""

    provider = "offline"

    def __init__(self, text: str = "Noted.") -> None:
        self.text = text

    async def complete(self, request: ChatRequest) -> Completion:
        return Completion(self.text, self.provider, request.model, 1, 1, 1)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        yield TextDelta(self.text)
        yield await self.complete(request)

    async def aclose(self) -> None:
        """Nothing to release."""

    def language_model(self, provider: str) -> LanguageModel:
        return self


class ChatClient:
    """Shortcuts over the stub; tests call the stub for what they check."""

    def __init__(self, stub: ChatServiceAsyncStub, issuer: TokenIssuer) -> None:
        self.stub = stub
        self._issuer = issuer

    def clinician(self) -> Caller:
        return self._issuer.caller("clinician")

    def admin(self) -> Caller:
        return self._issuer.caller("admin")

    async def model_id(self, caller: Caller, name: str = OFFLINE_MODEL) -> str:
        request = pb.ListModelsRequest(page_size=100)
        while True:
            page = await self.stub.ListModels(request, metadata=caller.metadata)
            for model in page.models:
                if model.name == name:
                    return model.id
            if not page.next_page_token:
                raise AssertionError(f"no model {name!r} is visible")
            request.page_token = page.next_page_token

    async def create_chat(
        self, caller: Caller, *, model_id: str = "", patient_id: str = "", title: str = ""
    ) -> pb.Chat:
        request = pb.CreateChatRequest(
            title=title,
            model_id=model_id or await self.model_id(caller),
            patient_id=patient_id,
        )
        return await self.stub.CreateChat(request, metadata=caller.metadata)

    async def send(
        self, caller: Caller, chat_id: str, content: str, *, request_id: str = ""
    ) -> pb.SendMessageResponse:
        request = pb.SendMessageRequest(chat_id=chat_id, content=content, request_id=request_id)
        return await self.stub.SendMessage(request, metadata=caller.metadata)

    async def messages(self, caller: Caller, chat_id: str) -> list[pb.Message]:
        """Every message of the chat, oldest first."""
        messages: list[pb.Message] = []
        request = pb.ListMessagesRequest(chat_id=chat_id, page_size=100)
        while True:
            page = await self.stub.ListMessages(request, metadata=caller.metadata)
            messages += page.messages
            if not page.next_page_token:
                return messages
            request.page_token = page.next_page_token

    async def search(self, caller: Caller, query: str) -> list[pb.Message]:
        request = pb.SearchMessagesRequest(query=query, page_size=100)
        page = await self.stub.SearchMessages(request, metadata=caller.metadata)
        return list(page.messages)

    async def get_chat(self, caller: Caller, chat_id: str) -> pb.Chat:
        return await self.stub.GetChat(pb.GetChatRequest(id=chat_id), metadata=caller.metadata)

    async def list_chats(self, caller: Caller) -> list[pb.Chat]:
        """The first page (100) of the caller's chats, newest first."""
        request = pb.ListChatsRequest(page_size=100)
        page = await self.stub.ListChats(request, metadata=caller.metadata)
        return list(page.chats)
