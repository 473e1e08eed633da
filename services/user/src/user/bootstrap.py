"""The composition root: settings in, a ready-to-serve user service out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from medstation.user.v1 import user_service_pb2_grpc as pb_grpc
from medstation_platform.auth.keys import CachedJwks
from medstation_platform.auth.revocation import RedisRevocations
from medstation_platform.auth.tokens import TOKEN_LEEWAY_SECONDS, TokenVerifier
from medstation_platform.db import build_engine, dispose_engine
from medstation_platform.pagination import PageTokenCodec
from medstation_platform.pool_metrics import instrument_pool, instrument_statement_pool
from medstation_platform.redis_connection import build_redis
from medstation_platform.rpc.server import ServiceBinding
from medstation_platform.statement_pool import StatementPool
from medstation_platform.telemetry import instrument_engine
from user import use_cases
from user.account_reads import SharedAccountReads
from user.domain import SessionPolicy
from user.grpc_api import SERVICE_NAME, UserServicer
from user.passwords import Passwords
from user.repository import UserUnitOfWork
from user.settings import UserSettings
from user.signing import TokenMinter
from user.throttle import LoginThrottle
from user.use_cases import Identity

DOMAIN = "medstation.user"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class UserService:
    identity: Identity
    verifier: TokenVerifier
    binding: ServiceBinding
    engine: AsyncEngine
    statements: StatementPool
    accounts: SharedAccountReads
    redis: Redis
    registry: CollectorRegistry

    async def close(self) -> None:
        await self.accounts.close()
        await self.statements.close()
        await self.redis.aclose()
        await dispose_engine(self.engine)


async def build(settings: UserSettings, *, clock: Callable[[], datetime] = utc_now) -> UserService:
    """Connects, ensures a signing key and the admin account, and wires the servicer."""
    engine = build_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        statement_timeout_ms=settings.database_statement_timeout_ms,
    )
    instrument_engine(engine)
    registry = CollectorRegistry()
    instrument_pool(engine, registry)
    redis = build_redis(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds)

    def unit_of_work() -> UserUnitOfWork:
        return UserUnitOfWork(engine)

    statements = StatementPool.for_service(settings)
    await statements.open()
    instrument_statement_pool(statements, registry, name="medstation_user_statements")
    accounts = SharedAccountReads(statements, registry)

    passphrase = settings.signing_key_passphrase.get_secret_value().encode()
    access_ttl = timedelta(seconds=settings.access_token_ttl_seconds)
    key = await use_cases.ensure_signing_key(unit_of_work, passphrase, clock())
    # Kept past the last possible use of a revoked token: lifetime plus verification leeway.
    revocations = RedisRevocations(
        redis, retention_seconds=settings.access_token_ttl_seconds + 2 * TOKEN_LEEWAY_SECONDS
    )
    identity = Identity(
        unit_of_work=unit_of_work,
        accounts=accounts,
        passwords=Passwords(),
        throttle=LoginThrottle(
            redis,
            limit=settings.login_failure_limit,
            window_seconds=settings.login_failure_window_seconds,
        ),
        revocations=revocations,
        minter=TokenMinter.load(
            key,
            passphrase,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl=access_ttl,
        ),
        page_tokens=PageTokenCodec(settings.page_token_secret.get_secret_value().encode()),
        sessions=SessionPolicy(
            idle=timedelta(seconds=settings.refresh_token_idle_seconds),
            absolute=timedelta(seconds=settings.refresh_token_absolute_seconds),
        ),
        clock=clock,
    )
    await use_cases.ensure_admin(
        identity,
        email=settings.admin_email,
        password=settings.admin_password.get_secret_value(),
    )
    # The user service checks tokens against its own published keys, no network hop.
    verifier = TokenVerifier(
        CachedJwks(lambda: use_cases.get_jwks(unit_of_work)),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        revocations=revocations,
    )
    servicer = UserServicer(identity)

    def register(server: grpc.aio.Server) -> None:
        pb_grpc.add_UserServiceServicer_to_server(servicer, server)

    return UserService(
        identity=identity,
        verifier=verifier,
        binding=ServiceBinding(SERVICE_NAME, register),
        engine=engine,
        statements=statements,
        accounts=accounts,
        redis=redis,
        registry=registry,
    )
