"""Verifying access tokens: signature, algorithm, issuer, audience, time, revocation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import jwt

from medstation_platform import errors
from medstation_platform.auth.keys import CachedJwks, KeyNotFound
from medstation_platform.auth.principal import Principal

# One algorithm, fixed by us and never read from the token: this is what defeats
# `alg: none` and HS256-with-the-public-key confusion.
SIGNING_ALGORITHM = "EdDSA"
# Tolerated clock skew between the signer and verifiers.
TOKEN_LEEWAY_SECONDS = 30
_REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub", "role", "sid"]
# Tokens whose signature and claims were already checked. A client sends the same token
# for its whole lifetime, and the Ed25519 check is the dearest step of verification.
VERIFIED_TOKENS_CACHED = 4096


class TokenMissing(errors.Unauthenticated):
    reason = "TOKEN_MISSING"
    default_message = "missing bearer token in the authorization header"


class TokenInvalid(errors.Unauthenticated):
    reason = "TOKEN_INVALID"
    default_message = "the access token is invalid"


class TokenExpired(errors.Unauthenticated):
    reason = "TOKEN_EXPIRED"
    default_message = "the access token has expired"


class TokenRevoked(errors.Unauthenticated):
    reason = "TOKEN_REVOKED"
    default_message = "the access token has been revoked"


class RevocationChecker(Protocol):
    async def is_revoked(self, session_id: str) -> bool: ...


@runtime_checkable
class FollowedRevocations(RevocationChecker, Protocol):
    """Revocations kept current by a task of their own (RedisRevocations)."""

    async def follow(self, stopping: asyncio.Event) -> None: ...


class TokenVerifier:
    def __init__(
        self,
        keys: CachedJwks,
        *,
        issuer: str,
        audience: str,
        revocations: RevocationChecker | None = None,
        leeway_seconds: int = TOKEN_LEEWAY_SECONDS,
        cache_size: int = VERIFIED_TOKENS_CACHED,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._revocations = revocations
        self._leeway = leeway_seconds
        self._cache_size = cache_size
        self._clock = clock
        self._verified: dict[str, dict[str, Any]] = {}

    async def verify(self, token: str) -> Principal:
        claims = await self._verified_claims(token)
        if self._revocations is not None and await self._revocations.is_revoked(str(claims["sid"])):
            raise TokenRevoked()
        return Principal(
            user_id=str(claims["sub"]),
            role=str(claims["role"]),
            session_id=str(claims["sid"]),
            token=token,
        )

    async def follow_revocations(self, stopping: asyncio.Event) -> None:
        """Keeps the revocation list current until `stopping` is set: a background task
        of every service that verifies tokens (run by medstation_platform.rpc.runtime)."""
        if isinstance(self._revocations, FollowedRevocations):
            await self._revocations.follow(stopping)
        else:
            await stopping.wait()

    @property
    def cached_tokens(self) -> int:
        return len(self._verified)

    async def _verified_claims(self, token: str) -> dict[str, Any]:
        """The token's claims, its signature checked once; expiry is checked every time.

        Only the expiry can turn a verified token invalid (nbf and the signature are
        settled, time only moves on); revocation is checked by the caller on every call.
        """
        claims = self._verified.get(token)
        if claims is None:
            claims = await self._decode(token)
            if len(self._verified) >= self._cache_size:
                del self._verified[next(iter(self._verified))]  # the oldest entry
            self._verified[token] = claims
        elif self._clock() > int(claims["exp"]) + self._leeway:
            del self._verified[token]
            raise TokenExpired()
        return claims

    async def _decode(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != SIGNING_ALGORITHM or not isinstance(header.get("kid"), str):
                raise TokenInvalid()
            key = await self._keys.key(header["kid"])
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[SIGNING_ALGORITHM],
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired() from None
        except (jwt.PyJWTError, KeyNotFound, ValueError):
            raise TokenInvalid() from None
        return claims


def bearer_token(authorization: str | None) -> str:
    """The token from an `authorization: Bearer <token>` value, or TokenMissing."""
    if not authorization:
        raise TokenMissing()
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenInvalid("the authorization header must be 'Bearer <token>'")
    return token.strip()
