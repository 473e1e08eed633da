"""Public signing keys (JWKS) with caching, refreshed when an unknown key id shows up."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import jwt
from google.api import httpbody_pb2

from medstation_platform import errors

logger = logging.getLogger(__name__)

JwksFetcher = Callable[[], Awaitable[bytes]]
_RETRY_AFTER_FAILURE_SECONDS = 1.0


def grpc_jwks_fetcher(
    channel: grpc.aio.Channel, method: str, *, timeout_seconds: float = 2.0
) -> JwksFetcher:
    """Fetches the JWKS from a gRPC method answering `google.api.HttpBody` (the user
    service's GetJwks), so other services need no HTTP client and no generated stub."""
    call = channel.unary_unary(
        method,
        # GetJwks takes an empty message: its wire form is no bytes at all.
        request_serializer=lambda _: b"",
        response_deserializer=httpbody_pb2.HttpBody.FromString,
    )

    async def fetch() -> bytes:
        body: httpbody_pb2.HttpBody = await call(None, timeout=timeout_seconds)
        return bytes(body.data)

    return fetch


class KeyNotFound(Exception):
    """No key with this id is published (even after a refresh)."""


class KeysUnavailable(errors.Unavailable):
    reason = "SIGNING_KEYS_UNAVAILABLE"
    default_message = "the identity service's signing keys cannot be fetched; retry later"


class CachedJwks:
    """A JWKS document fetched on demand and kept for `ttl_seconds`.

    An unknown `kid` triggers a refresh (key rotation), but at most once per
    `min_refresh_seconds`, so a flood of forged kids cannot hammer the key source.
    """

    def __init__(
        self,
        fetch: JwksFetcher,
        *,
        ttl_seconds: float = 300.0,
        min_refresh_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl_seconds
        self._min_refresh = min_refresh_seconds
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._retry_after = 0.0
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK:
        if self._is_stale() or (kid not in self._keys and self._may_refresh()):
            await self._refresh()
        try:
            return self._keys[kid]
        except KeyError:
            raise KeyNotFound(kid) from None

    def _is_stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at > self._ttl

    def _may_refresh(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at > self._min_refresh

    async def _refresh(self) -> None:
        async with self._lock:
            if self._fetched_at is not None and self._clock() - self._fetched_at < 0.5:
                return  # another task refreshed while we waited
            if not self._keys and self._clock() < self._retry_after:
                raise KeysUnavailable()  # failed a moment ago: do not queue up behind it
            try:
                document = json.loads(await self._fetch())
            except Exception as error:  # the source's failure types vary (gRPC, HTTP, JSON)
                if not self._keys:
                    self._retry_after = self._clock() + _RETRY_AFTER_FAILURE_SECONDS
                    raise KeysUnavailable() from error
                # Known keys stay trusted a little longer rather than failing every call.
                logger.warning("JWKS refresh failed; keeping the known keys", exc_info=error)
                self._fetched_at = self._clock() - self._ttl + self._min_refresh
                return
            self._keys = _parse_keys(document)
            self._fetched_at = self._clock()


def _parse_keys(document: dict[str, Any]) -> dict[str, jwt.PyJWK]:
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document.get("keys", []):
        kid = entry.get("kid")
        if not kid:
            continue
        try:
            keys[kid] = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            logger.warning("ignoring unusable JWKS entry", extra={"kid": kid})
    return keys
