"""The composition root: settings in, a ready summary service (or worker) out."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from medstation.summary.v1 import summary_service_pb2_grpc as pb_grpc
from medstation_llm.model import Summarizer
from medstation_llm.registry import ModelRegistry
from medstation_platform.auth.keys import CachedJwks, grpc_jwks_fetcher
from medstation_platform.auth.revocation import RedisRevocations
from medstation_platform.auth.tokens import TOKEN_LEEWAY_SECONDS, TokenVerifier
from medstation_platform.db import build_engine, dispose_engine
from medstation_platform.pagination import PageTokenCodec
from medstation_platform.pool_metrics import instrument_pool
from medstation_platform.redis_connection import build_redis
from medstation_platform.rpc.client import open_channel
from medstation_platform.rpc.server import ServiceBinding
from medstation_platform.telemetry import instrument_engine
from summary.credentials import CredentialSealer
from summary.grpc_api import SERVICE_NAME, SummaryServicer
from summary.metrics import build_worker_metrics
from summary.patients import READ_METHODS, PatientRecords
from summary.repository import SummaryUnitOfWork
from summary.settings import SummarySettings
from summary.streams import JobStream, StreamGroup
from summary.use_cases import Policy, Summaries
from summary.worker import SummaryWorker, WorkerConfig

DOMAIN = "medstation.summary"
JWKS_METHOD = "/medstation.user.v1.UserService/GetJwks"
# This service only reads the shared revocation list (see patient_record.bootstrap).
_REVOCATION_RETENTION_SECONDS = 3600 + 2 * TOKEN_LEEWAY_SECONDS
# Blocking stream reads wait up to a second: the socket must wait longer than that.
_BLOCKING_READ_SECONDS = 1.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def current_trace_context() -> dict[str, str]:
    """The W3C trace context of the RPC being served, to travel with its job."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@dataclass
class _Resources:
    """What a process opened and must close, in reverse order."""

    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        for closer in reversed(self.closers):
            await closer()


@dataclass(frozen=True)
class SummaryService:
    summaries: Summaries
    verifier: TokenVerifier
    binding: ServiceBinding
    registry: CollectorRegistry
    engine: AsyncEngine
    redis: Redis
    _resources: _Resources

    async def close(self) -> None:
        await self._resources.close()


@dataclass(frozen=True)
class WorkerProcess:
    worker: SummaryWorker
    summaries: Summaries
    registry: CollectorRegistry
    engine: AsyncEngine
    redis: Redis
    _resources: _Resources

    async def close(self) -> None:
        await self._resources.close()


async def build(
    settings: SummarySettings,
    *,
    verifier: TokenVerifier | None = None,
    summarizer: Summarizer | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> SummaryService:
    """Wires the servicer; `verifier` replaces the one trusting the user service's keys,
    `summarizer` the one the settings name."""
    resources = _Resources()
    registry = CollectorRegistry()
    summaries, engine, redis = _summaries(settings, resources, summarizer, clock, registry)
    if verifier is None:
        user_channel = open_channel(settings.user_service_addr)
        resources.closers.append(lambda: user_channel.close(grace=None))
        verifier = TokenVerifier(
            CachedJwks(grpc_jwks_fetcher(user_channel, JWKS_METHOD)),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            revocations=RedisRevocations(redis, retention_seconds=_REVOCATION_RETENTION_SECONDS),
        )
    servicer = SummaryServicer(summaries)

    def register(server: grpc.aio.Server) -> None:
        pb_grpc.add_SummaryServiceServicer_to_server(servicer, server)

    return SummaryService(
        summaries=summaries,
        verifier=verifier,
        binding=ServiceBinding(SERVICE_NAME, register),
        registry=registry,
        engine=engine,
        redis=redis,
        _resources=resources,
    )


async def build_worker(
    settings: SummarySettings,
    *,
    summarizer: Summarizer | None = None,
    clock: Callable[[], datetime] = utc_now,
    tracer: Tracer | None = None,
) -> WorkerProcess:
    resources = _Resources()
    registry = CollectorRegistry()
    summaries, engine, redis = _summaries(settings, resources, summarizer, clock, registry)
    blocking = build_redis(
        settings.redis_url, timeout_seconds=settings.redis_timeout_seconds + _BLOCKING_READ_SECONDS
    )
    resources.closers.append(blocking.aclose)
    consumer = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    worker = SummaryWorker(
        summaries,
        jobs=StreamGroup(
            blocking,
            stream=settings.jobs_stream,
            group=settings.jobs_group,
            consumer=consumer,
            delete_acknowledged=True,
        ),
        events=StreamGroup(
            blocking,
            stream=settings.events_stream,
            group=settings.events_group,
            consumer=consumer,
            # The patient-record service's stream: other groups read it too.
            delete_acknowledged=False,
        ),
        config=WorkerConfig(
            concurrency=settings.worker_concurrency,
            claim_idle_seconds=settings.claim_idle_seconds,
            reconcile_interval_seconds=settings.reconcile_interval_seconds,
            shutdown_grace_seconds=settings.shutdown_grace_seconds,
        ),
        metrics=build_worker_metrics(registry),
        tracer=tracer or trace.get_tracer("summary.worker"),
    )
    return WorkerProcess(worker, summaries, registry, engine, redis, resources)


def _summaries(
    settings: SummarySettings,
    resources: _Resources,
    summarizer: Summarizer | None,
    clock: Callable[[], datetime],
    registry: CollectorRegistry,
) -> tuple[Summaries, AsyncEngine, Redis]:
    engine = build_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        statement_timeout_ms=settings.database_statement_timeout_ms,
    )
    instrument_engine(engine)
    instrument_pool(engine, registry)
    resources.closers.append(lambda: dispose_engine(engine))
    redis = build_redis(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds)
    resources.closers.append(redis.aclose)
    patient_channel = open_channel(settings.patient_service_addr, retryable_methods=READ_METHODS)
    resources.closers.append(lambda: patient_channel.close(grace=None))
    if summarizer is None:
        models = ModelRegistry(settings.llm, registry)
        resources.closers.append(models.aclose)
        summarizer = models.summarizer(settings.summary_provider, settings.summary_model)

    def unit_of_work() -> SummaryUnitOfWork:
        return SummaryUnitOfWork(engine)

    summaries = Summaries(
        unit_of_work=unit_of_work,
        patients=PatientRecords(patient_channel, max_notes=settings.max_chart_notes),
        summarizer=summarizer,
        queue=JobStream(redis, settings.jobs_stream),
        sealer=CredentialSealer(settings.credentials_secret.get_secret_value().encode()),
        page_tokens=PageTokenCodec(settings.page_token_secret.get_secret_value().encode()),
        policy=_policy(settings),
        clock=clock,
        trace_context=current_trace_context,
    )
    return summaries, engine, redis


def _policy(settings: SummarySettings) -> Policy:
    return Policy(
        llm_timeout_seconds=settings.llm.llm_timeout_seconds,
        job_timeout_seconds=settings.job_timeout_seconds,
        job_max_attempts=settings.job_max_attempts,
        job_lease_seconds=settings.job_lease_seconds,
        requeue_after_seconds=settings.job_requeue_after_seconds,
        watch_poll_seconds=settings.watch_poll_seconds,
        watch_max_seconds=settings.watch_max_seconds,
    )
