"""The user service's use cases wired to in-memory fakes: no database, Redis or network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher

from medstation_platform.auth.keys import CachedJwks
from medstation_platform.auth.tokens import TokenVerifier
from medstation_platform.pagination import PageTokenCodec
from services.user.tests.unit.accounts import Accounts
from services.user.tests.unit.fakes import (
    FakeAccountReads,
    FakeDatabase,
    FakeRevocations,
    FakeThrottle,
    FixedClock,
)
from user import use_cases
from user.domain import SessionPolicy
from user.passwords import Passwords
from user.signing import TokenMinter, new_signing_key
from user.use_cases import Identity

ISSUER = "medstation"
AUDIENCE = "medstation-api"
PASSPHRASE = b"unit-test-signing-key-passphrase"
ACCESS_TTL = timedelta(minutes=15)
SESSION_IDLE = timedelta(minutes=30)
SESSION_ABSOLUTE = timedelta(hours=12)
LOGIN_FAILURE_LIMIT = 3


@pytest.fixture
def clock() -> FixedClock:
    # Starts at the real time: the token verifier checks exp/nbf against the wall clock.
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def database() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
def throttle() -> FakeThrottle:
    return FakeThrottle(limit=LOGIN_FAILURE_LIMIT)


@pytest.fixture
def revocations() -> FakeRevocations:
    return FakeRevocations()


@pytest.fixture
def identity(
    database: FakeDatabase,
    throttle: FakeThrottle,
    revocations: FakeRevocations,
    clock: FixedClock,
) -> Identity:
    key = new_signing_key(PASSPHRASE, clock())
    database.committed.signing_keys[key.kid] = key
    return Identity(
        unit_of_work=database.unit_of_work,
        accounts=FakeAccountReads(database),
        # The cheapest argon2id parameters: same code path, milliseconds instead of tens.
        passwords=Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)),
        throttle=throttle,
        revocations=revocations,
        minter=TokenMinter.load(key, PASSPHRASE, issuer=ISSUER, audience=AUDIENCE, ttl=ACCESS_TTL),
        page_tokens=PageTokenCodec(b"unit-test-page-token-secret"),
        sessions=SessionPolicy(idle=SESSION_IDLE, absolute=SESSION_ABSOLUTE),
        clock=clock,
    )


@pytest.fixture
def verifier(identity: Identity) -> TokenVerifier:
    """Checks tokens the way every service does, against the published JWKS document."""

    async def fetch_jwks() -> bytes:
        return await use_cases.get_jwks(identity.unit_of_work)

    return TokenVerifier(CachedJwks(fetch_jwks), issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture
def accounts(identity: Identity, verifier: TokenVerifier) -> Accounts:
    return Accounts(identity, verifier)
