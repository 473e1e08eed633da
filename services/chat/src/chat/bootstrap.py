"""The composition root: settings in, a ready-to-serve chat service out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import grpc
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from chat.detached import DetachedTasks
from chat.grpc_api import SERVICE_NAME, ChatServicer
from chat.patients import RETRYABLE_METHODS, GrpcPatientRecords
from chat.rate_limit import MessageRateLimiter
from chat.repository import ChatUnitOfWork
from chat.settings import ChatSettings
from chat.use_cases import Chats, ConversationLimits
from medstation.chat.v1 import chat_service_pb2_grpc as pb_grpc
from medstation_llm.model import LanguageModel
from medstation_llm.registry import ModelRegistry
from medstation_platform.auth.keys import CachedJwks, grpc_jwks_fetcher
from medstation_platform.auth.revocation import RedisRevocations
from medstation_platform.auth.tokens import TOKEN_LEEWAY_SECONDS, TokenVerifier
from medstation_platform.db import build_engine, dispose_engine
from medstation_platform.pagination import PageTokenCodec
from medstation_platform.pool_metrics import instrument_pool
from medstation_platform.redis_connection import build_redis
from medstation_platform.rpc.client import open_channel, outgoing_timeout
from medstation_platform.rpc.server import ServiceBinding
from medstation_platform.telemetry import instrument_engine

DOMAIN = "medstation.chat"
JWKS_METHOD = "/medstation.user.v1.UserService/GetJwks"
# This service only reads the shared revocation list; the retention matters to writers,
# and is the longest access-token lifetime the user service allows plus the leeway.
_REVOCATION_RETENTION_SECONDS = 3600 + 2 * TOKEN_LEEWAY_SECONDS


class ModelSource(Protocol):
    """Provider name → its chat model (medstation_llm's ModelRegistry, or a test's)."""

    def language_model(self, provider: str) -> LanguageModel: ...
    async def aclose(self) -> None: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ChatService:
    chats: Chats
    verifier: TokenVerifier
    binding: ServiceBinding
    registry: CollectorRegistry
    engine: AsyncEngine
    redis: Redis
    models: ModelSource
    detached: DetachedTasks
    channels: tuple[grpc.aio.Channel, ...]
    reply_drain_seconds: float

    async def close(self) -> None:
        # Replies still being written finish and are stored before their resources go.
        await self.detached.close(self.reply_drain_seconds)
        for channel in self.channels:
            await channel.close(grace=None)
        await self.models.aclose()
        await self.redis.aclose()
        await dispose_engine(self.engine)


async def build(
    settings: ChatSettings,
    *,
    verifier: TokenVerifier | None = None,
    models: ModelSource | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> ChatService:
    """Wires the servicer; `verifier` replaces the one trusting the user service's keys,
    `models` the language models the settings configure."""
    registry = CollectorRegistry()
    engine = build_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        statement_timeout_ms=settings.database_statement_timeout_ms,
    )
    instrument_engine(engine)
    instrument_pool(engine, registry)
    redis = build_redis(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds)
    channels: list[grpc.aio.Channel] = []
    if verifier is None:
        user_channel = open_channel(settings.user_service_addr)
        channels.append(user_channel)
        verifier = TokenVerifier(
            CachedJwks(grpc_jwks_fetcher(user_channel, JWKS_METHOD)),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            revocations=RedisRevocations(redis, retention_seconds=_REVOCATION_RETENTION_SECONDS),
        )
    patient_channel = open_channel(
        settings.patient_service_addr,
        default_timeout_seconds=settings.patient_service_timeout_seconds,
        retryable_methods=RETRYABLE_METHODS,
    )
    channels.append(patient_channel)
    models = models or ModelRegistry(settings.llm, registry)
    detached = DetachedTasks()

    def unit_of_work() -> ChatUnitOfWork:
        return ChatUnitOfWork(engine)

    def reply_timeout() -> float:
        return outgoing_timeout(settings.llm.llm_timeout_seconds)

    chats = Chats(
        unit_of_work=unit_of_work,
        language_models=models,
        patients=GrpcPatientRecords(
            patient_channel,
            timeout_seconds=settings.patient_service_timeout_seconds,
            max_notes=settings.chart_max_notes,
            max_chars=settings.chart_max_chars,
        ),
        rate_limiter=MessageRateLimiter(
            redis,
            limit=settings.rate_limit_messages,
            window_seconds=settings.rate_limit_window_seconds,
        ),
        detached=detached,
        page_tokens=PageTokenCodec(settings.page_token_secret.get_secret_value().encode()),
        limits=ConversationLimits(
            history_max_messages=settings.history_max_messages,
            history_max_chars=settings.history_max_chars,
            max_output_tokens=settings.max_output_tokens,
        ),
        reply_timeout=reply_timeout,
        clock=clock,
    )
    servicer = ChatServicer(chats)

    def register(server: grpc.aio.Server) -> None:
        pb_grpc.add_ChatServiceServicer_to_server(servicer, server)

    return ChatService(
        chats=chats,
        verifier=verifier,
        binding=ServiceBinding(SERVICE_NAME, register),
        registry=registry,
        engine=engine,
        redis=redis,
        models=models,
        detached=detached,
        channels=tuple(channels),
        reply_drain_seconds=settings.reply_drain_seconds,
    )
