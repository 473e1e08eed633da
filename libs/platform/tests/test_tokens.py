import asyncio
import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medstation_platform.auth.keys import CachedJwks
from medstation_platform.auth.tokens import (
    TokenExpired,
    TokenInvalid,
    TokenMissing,
    TokenRevoked,
    TokenVerifier,
    bearer_token,
)

KEY = Ed25519PrivateKey.generate()
PUBLIC_RAW = KEY.public_key().public_bytes(
    serialization.Encoding.Raw, serialization.PublicFormat.Raw
)
X = base64.urlsafe_b64encode(PUBLIC_RAW).decode().rstrip("=")
JWKS = {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "k1", "alg": "EdDSA"}]}


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "medstation",
        "aud": "medstation-api",
        "sub": "user-1",
        "role": "clinician",
        "sid": "session-1",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return claims


def _token(**overrides: Any) -> str:
    return jwt.encode(_claims(**overrides), KEY, algorithm="EdDSA", headers={"kid": "k1"})


class Revoked:
    def __init__(self, *sessions: str) -> None:
        self.sessions = set(sessions)

    async def is_revoked(self, session_id: str) -> bool:
        return session_id in self.sessions


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


def _verifier(
    revoked: Revoked | None = None, clock: Clock | None = None, cache_size: int = 4096
) -> TokenVerifier:
    async def fetch() -> bytes:
        return json.dumps(JWKS).encode()

    return TokenVerifier(
        CachedJwks(fetch),
        issuer="medstation",
        audience="medstation-api",
        revocations=revoked,
        clock=clock or time.time,
        cache_size=cache_size,
    )


async def test_valid_token_gives_the_principal() -> None:
    principal = await _verifier().verify(_token())
    assert (principal.user_id, principal.role, principal.session_id) == (
        "user-1",
        "clinician",
        "session-1",
    )


def _unsigned(header: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part(header)}.{part(_claims())}."


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("garbage", id="garbage"),
        pytest.param(_unsigned({"alg": "none", "kid": "k1"}), id="alg-none"),
        pytest.param(
            jwt.encode(_claims(), PUBLIC_RAW, algorithm="HS256", headers={"kid": "k1"}),
            id="hs256-with-public-key",
        ),
        pytest.param(
            jwt.encode(
                _claims(), Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "k1"}
            ),
            id="forged-signature",
        ),
        pytest.param(
            jwt.encode(_claims(), KEY, algorithm="EdDSA", headers={"kid": "unknown"}),
            id="unknown-kid",
        ),
        pytest.param(_token(iss="someone-else"), id="wrong-issuer"),
        pytest.param(_token(aud="another-api"), id="wrong-audience"),
        pytest.param(_token(nbf=int(time.time()) + 3600), id="not-yet-valid"),
    ],
)
async def test_untrustworthy_tokens_are_rejected(token: str) -> None:
    with pytest.raises(TokenInvalid):
        await _verifier().verify(token)


async def test_expired_token_is_rejected_as_expired() -> None:
    with pytest.raises(TokenExpired):
        await _verifier().verify(_token(exp=int(time.time()) - 3600))


async def test_token_missing_a_required_claim_is_rejected() -> None:
    claims = _claims()
    del claims["sid"]
    token = jwt.encode(claims, KEY, algorithm="EdDSA", headers={"kid": "k1"})
    with pytest.raises(TokenInvalid):
        await _verifier().verify(token)


async def test_revoked_session_is_rejected() -> None:
    with pytest.raises(TokenRevoked):
        await _verifier(Revoked("session-1")).verify(_token())


async def test_a_token_verified_before_still_expires() -> None:
    clock = Clock()
    verifier = _verifier(clock=clock)
    token = _token(exp=int(clock.now) + 60)
    await verifier.verify(token)
    clock.now += 60 + 30  # the expiry plus the leeway: still accepted
    assert (await verifier.verify(token)).user_id == "user-1"
    clock.now += 1
    with pytest.raises(TokenExpired):
        await verifier.verify(token)


async def test_a_token_verified_before_is_still_checked_for_revocation() -> None:
    revoked = Revoked()
    verifier = _verifier(revoked)
    token = _token()
    await verifier.verify(token)
    revoked.sessions.add("session-1")
    with pytest.raises(TokenRevoked):
        await verifier.verify(token)


async def test_rejected_tokens_are_rejected_again_and_the_cache_stays_bounded() -> None:
    verifier = _verifier(cache_size=2)
    forged = jwt.encode(
        _claims(), Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "k1"}
    )
    for _ in range(2):
        with pytest.raises(TokenInvalid):
            await verifier.verify(forged)
    tokens = [_token(sid=f"session-{n}") for n in range(5)]
    for token in tokens:
        await verifier.verify(token)
    for n, token in enumerate(tokens):  # evicted or not, each still verifies as itself
        assert (await verifier.verify(token)).session_id == f"session-{n}"
    assert verifier.cached_tokens == 2


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    with pytest.raises(TokenMissing):
        bearer_token(None)
    with pytest.raises(TokenInvalid):
        bearer_token("Basic abc")


async def test_revocations_that_cannot_follow_leave_the_verifier_waiting_until_stopped() -> None:
    stopping = asyncio.Event()
    following = asyncio.create_task(_verifier(Revoked()).follow_revocations(stopping))
    for _ in range(10):
        await asyncio.sleep(0)  # turns of the loop: it must not return on its own

    assert not following.done()
    stopping.set()
    await asyncio.wait_for(following, timeout=1)
