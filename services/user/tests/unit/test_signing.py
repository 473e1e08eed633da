"""Access tokens and the JWKS document other services verify them with."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medstation_platform.auth.tokens import TokenInvalid, TokenVerifier
from services.user.tests.unit.accounts import Accounts
from services.user.tests.unit.fakes import FakeDatabase, FixedClock
from user import use_cases
from user.domain import CLINICIAN
from user.use_cases import Identity

PASSPHRASE = b"passphrase of keys made in these tests"


def _published_keys(document: bytes) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = json.loads(document)["keys"]
    return keys


async def test_jwks_publishes_the_public_ed25519_key_only(identity: Identity) -> None:
    [key] = _published_keys(await use_cases.get_jwks(identity.unit_of_work))

    assert (key["kty"], key["crv"], key["alg"], key["kid"]) == (
        "OKP",
        "Ed25519",
        "EdDSA",
        identity.minter.kid,
    )
    assert "d" not in key


async def test_access_tokens_verify_against_the_published_keys(
    accounts: Accounts, verifier: TokenVerifier
) -> None:
    user = await accounts.register()
    session = await accounts.sign_in(user.email)

    principal = await verifier.verify(session.tokens.access_token)

    assert (principal.user_id, principal.role) == (user.id, CLINICIAN)


async def test_access_tokens_carry_the_claims_every_service_relies_on(
    accounts: Accounts, identity: Identity, clock: FixedClock
) -> None:
    session = await accounts.clinician()
    token = session.tokens.access_token

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})

    assert (header["alg"], header["kid"]) == ("EdDSA", identity.minter.kid)
    assert claims["sid"] == session.principal.session_id
    assert claims["exp"] - claims["iat"] == session.tokens.expires_in
    assert claims["iat"] == int(clock().timestamp())
    assert claims["jti"]


async def test_tokens_signed_by_an_unpublished_key_are_rejected(
    accounts: Accounts, identity: Identity, verifier: TokenVerifier
) -> None:
    session = await accounts.clinician()
    claims = jwt.decode(session.tokens.access_token, options={"verify_signature": False})
    forged = jwt.encode(
        claims,
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": identity.minter.kid},
    )

    with pytest.raises(TokenInvalid):
        await verifier.verify(forged)


async def test_ensure_signing_key_keeps_the_published_key(
    identity: Identity, database: FakeDatabase, clock: FixedClock
) -> None:
    key = await use_cases.ensure_signing_key(database.unit_of_work, PASSPHRASE, clock())

    assert key.kid == identity.minter.kid
    assert list(database.committed.signing_keys) == [key.kid]


async def test_ensure_signing_key_creates_one_when_none_is_published(
    clock: FixedClock,
) -> None:
    database = FakeDatabase()

    first = await use_cases.ensure_signing_key(database.unit_of_work, PASSPHRASE, clock())
    second = await use_cases.ensure_signing_key(database.unit_of_work, PASSPHRASE, clock())

    assert first == second
    assert list(database.committed.signing_keys) == [first.kid]
