"""The composition root: settings in, a ready-to-serve patient-record service out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
from opentelemetry import trace
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from medstation.patient.v1 import patient_service_pb2_grpc as pb_grpc
from medstation_platform.auth.keys import CachedJwks, grpc_jwks_fetcher
from medstation_platform.auth.revocation import RedisRevocations
from medstation_platform.auth.tokens import TOKEN_LEEWAY_SECONDS, TokenVerifier
from medstation_platform.db import build_engine, dispose_engine
from medstation_platform.outbox import OutboxRelay
from medstation_platform.pagination import PageTokenCodec
from medstation_platform.pool_metrics import instrument_pool, instrument_statement_pool
from medstation_platform.redis_connection import build_redis
from medstation_platform.rpc.client import open_channel
from medstation_platform.rpc.server import ServiceBinding
from medstation_platform.statement_pool import StatementPool
from medstation_platform.telemetry import instrument_engine
from patient_record import tables
from patient_record.grpc_api import SERVICE_NAME, PatientRecordServicer
from patient_record.repository import PatientUnitOfWork
from patient_record.settings import PatientSettings
from patient_record.shared_statements import NoteInserts, PatientReads
from patient_record.use_cases import Records

DOMAIN = "medstation.patient"
JWKS_METHOD = "/medstation.user.v1.UserService/GetJwks"
# This service only reads the shared revocation list; the retention matters to writers,
# and is the longest access-token lifetime the user service allows plus the leeway.
_REVOCATION_RETENTION_SECONDS = 3600 + 2 * TOKEN_LEEWAY_SECONDS


def utc_now() -> datetime:
    return datetime.now(UTC)


def current_trace_id() -> str:
    """The W3C trace id of the RPC being served, as 32 hex digits; "" outside a trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


@dataclass(frozen=True)
class PatientService:
    records: Records
    verifier: TokenVerifier
    binding: ServiceBinding
    relay: OutboxRelay
    registry: CollectorRegistry
    engine: AsyncEngine
    statements: StatementPool
    redis: Redis
    user_channel: grpc.aio.Channel | None

    async def close(self) -> None:
        if self.user_channel is not None:
            await self.user_channel.close(grace=None)
        await self.records.reads.close()
        await self.records.new_notes.close()
        await self.statements.close()
        await self.redis.aclose()
        await dispose_engine(self.engine)


async def build(
    settings: PatientSettings,
    *,
    verifier: TokenVerifier | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> PatientService:
    """Wires the servicer; `verifier` replaces the one trusting the user service's keys."""
    registry = CollectorRegistry()
    engine = build_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        statement_timeout_ms=settings.database_statement_timeout_ms,
    )
    instrument_engine(engine)
    instrument_pool(engine, registry)
    redis = build_redis(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds)
    user_channel = None
    if verifier is None:
        user_channel = open_channel(settings.user_service_addr)
        verifier = TokenVerifier(
            CachedJwks(grpc_jwks_fetcher(user_channel, JWKS_METHOD)),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            revocations=RedisRevocations(redis, retention_seconds=_REVOCATION_RETENTION_SECONDS),
        )

    def unit_of_work() -> PatientUnitOfWork:
        return PatientUnitOfWork(engine)

    statements = StatementPool.for_service(settings)
    await statements.open()
    instrument_statement_pool(statements, registry, name="medstation_patient_statements")
    records = Records(
        unit_of_work=unit_of_work,
        reads=PatientReads(statements, registry, cache_entries=settings.patient_cache_entries),
        new_notes=NoteInserts(statements, registry),
        page_tokens=PageTokenCodec(settings.page_token_secret.get_secret_value().encode()),
        idempotency_secret=settings.idempotency_secret.get_secret_value().encode(),
        clock=clock,
        trace_id=current_trace_id,
    )
    servicer = PatientRecordServicer(records)

    def register(server: grpc.aio.Server) -> None:
        pb_grpc.add_PatientRecordServiceServicer_to_server(servicer, server)

    relay = OutboxRelay(
        engine,
        redis,
        tables.outbox,
        stream=settings.events_stream,
        lock_id=settings.outbox_relay_lock_id,
        registry=registry,
    )
    return PatientService(
        records=records,
        verifier=verifier,
        binding=ServiceBinding(SERVICE_NAME, register),
        relay=relay,
        registry=registry,
        engine=engine,
        statements=statements,
        redis=redis,
        user_channel=user_channel,
    )
