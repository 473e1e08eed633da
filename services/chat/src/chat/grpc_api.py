"""ChatService over gRPC: translate proto ⇄ domain and call one use case per RPC."""

from __future__ import annotations

from collections.abc import AsyncIterator

from google.protobuf import empty_pb2

from chat import use_cases
from chat.domain import Chat, Exchange, Message, Model
from chat.use_cases import ChatDetails, Chats, ModelChanges, ModelDetails, PageRequest
from medstation.chat.v1 import chat_service_pb2 as pb
from medstation.chat.v1 import chat_service_pb2_grpc as pb_grpc
from medstation_platform.auth.principal import require_principal
from medstation_platform.field_mask import fields_to_update
from medstation_platform.proto_time import to_timestamp
from medstation_platform.rpc.interceptors import Context

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ChatService"].full_name
PUBLIC_METHODS: frozenset[str] = frozenset()  # every call is someone's: all need a token
_MODEL_UPDATABLE = ("name", "provider", "price_per_million_tokens", "enabled")
_CHAT_UPDATABLE = ("title",)


def model_to_proto(model: Model) -> pb.Model:
    return pb.Model(
        id=model.id,
        name=model.name,
        provider=model.provider,
        price_per_million_tokens=model.price_per_million_tokens,
        enabled=model.enabled,
        created_at=to_timestamp(model.created_at),
        updated_at=to_timestamp(model.updated_at),
    )


def chat_to_proto(chat: Chat) -> pb.Chat:
    return pb.Chat(
        id=chat.id,
        title=chat.title,
        model_id=chat.model_id,
        patient_id=chat.patient_id or "",
        created_at=to_timestamp(chat.created_at),
        updated_at=to_timestamp(chat.updated_at),
    )


def message_to_proto(message: Message) -> pb.Message:
    return pb.Message(
        id=message.id,
        chat_id=message.chat_id,
        role=message.role,
        content=message.content,
        created_at=to_timestamp(message.created_at),
        token_count=message.token_count,
    )


def exchange_to_proto(exchange: Exchange) -> pb.MessageExchange:
    return pb.MessageExchange(
        user_message=message_to_proto(exchange.user_message),
        assistant_message=message_to_proto(exchange.assistant_message),
    )


class ChatServicer(pb_grpc.ChatServiceServicer):
    def __init__(self, chats: Chats) -> None:
        self._chats = chats

    async def ListModels(
        self, request: pb.ListModelsRequest, context: Context
    ) -> pb.ListModelsResponse:
        page = await use_cases.list_models(
            self._chats, require_principal(), PageRequest(request.page_size, request.page_token)
        )
        return pb.ListModelsResponse(
            models=[model_to_proto(model) for model in page.items],
            next_page_token=page.next_page_token,
        )

    async def CreateModel(self, request: pb.CreateModelRequest, context: Context) -> pb.Model:
        details = ModelDetails(
            name=request.name,
            provider=request.provider,
            price_per_million_tokens=request.price_per_million_tokens,
            enabled=request.enabled,
        )
        model = await use_cases.create_model(self._chats, require_principal(), details)
        return model_to_proto(model)

    async def UpdateModel(self, request: pb.UpdateModelRequest, context: Context) -> pb.Model:
        body = request.model
        fields = fields_to_update(body, request.update_mask, updatable=_MODEL_UPDATABLE)
        changes = ModelChanges(
            name=body.name if "name" in fields else None,
            provider=body.provider if "provider" in fields else None,
            price_per_million_tokens=(
                body.price_per_million_tokens if "price_per_million_tokens" in fields else None
            ),
            enabled=body.enabled if "enabled" in fields else None,
        )
        model = await use_cases.update_model(self._chats, require_principal(), body.id, changes)
        return model_to_proto(model)

    async def CreateChat(self, request: pb.CreateChatRequest, context: Context) -> pb.Chat:
        details = ChatDetails(
            title=request.title, model_id=request.model_id, patient_id=request.patient_id
        )
        chat = await use_cases.create_chat(self._chats, require_principal(), details)
        return chat_to_proto(chat)

    async def ListChats(
        self, request: pb.ListChatsRequest, context: Context
    ) -> pb.ListChatsResponse:
        page = await use_cases.list_chats(
            self._chats, require_principal(), PageRequest(request.page_size, request.page_token)
        )
        return pb.ListChatsResponse(
            chats=[chat_to_proto(chat) for chat in page.items],
            next_page_token=page.next_page_token,
        )

    async def GetChat(self, request: pb.GetChatRequest, context: Context) -> pb.Chat:
        chat = await use_cases.get_chat(self._chats, require_principal(), request.id)
        return chat_to_proto(chat)

    async def UpdateChat(self, request: pb.UpdateChatRequest, context: Context) -> pb.Chat:
        body = request.chat
        fields = fields_to_update(body, request.update_mask, updatable=_CHAT_UPDATABLE)
        chat = await use_cases.update_chat(
            self._chats,
            require_principal(),
            body.id,
            title=body.title if "title" in fields else None,
        )
        return chat_to_proto(chat)

    async def DeleteChat(self, request: pb.DeleteChatRequest, context: Context) -> empty_pb2.Empty:
        await use_cases.delete_chat(self._chats, require_principal(), request.id)
        return empty_pb2.Empty()

    async def SendMessage(
        self, request: pb.SendMessageRequest, context: Context
    ) -> pb.SendMessageResponse:
        exchange = await use_cases.send_message(
            self._chats,
            require_principal(),
            request.chat_id,
            request.content,
            request_id=request.request_id,
        )
        return pb.SendMessageResponse(
            user_message=message_to_proto(exchange.user_message),
            assistant_message=message_to_proto(exchange.assistant_message),
        )

    async def StreamMessage(
        self, request: pb.StreamMessageRequest, context: Context
    ) -> AsyncIterator[pb.StreamMessageResponse]:
        items = use_cases.stream_message(
            self._chats, require_principal(), request.chat_id, request.content
        )
        async for item in items:
            if isinstance(item, Exchange):
                yield pb.StreamMessageResponse(completed=exchange_to_proto(item))
            else:
                yield pb.StreamMessageResponse(delta=item)

    async def ListMessages(
        self, request: pb.ListMessagesRequest, context: Context
    ) -> pb.ListMessagesResponse:
        page = await use_cases.list_messages(
            self._chats,
            require_principal(),
            request.chat_id,
            PageRequest(request.page_size, request.page_token),
        )
        return pb.ListMessagesResponse(
            messages=[message_to_proto(message) for message in page.items],
            next_page_token=page.next_page_token,
        )

    async def SearchMessages(
        self, request: pb.SearchMessagesRequest, context: Context
    ) -> pb.SearchMessagesResponse:
        page = await use_cases.search_messages(
            self._chats,
            require_principal(),
            request.query,
            PageRequest(request.page_size, request.page_token),
        )
        return pb.SearchMessagesResponse(
            messages=[message_to_proto(message) for message in page.items],
            next_page_token=page.next_page_token,
        )
