"""Keyset pagination: page sizes and opaque, tamper-evident page tokens (AIP-158)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from medstation_platform import errors

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
_MAC_BYTES = 16

T = TypeVar("T")
JsonScalar = str | int | float | bool | None


def resolve_page_size(requested: int) -> int:
    """0 means the default; above the maximum is coerced down (negative is a 400)."""
    if requested < 0:
        raise errors.InvalidArgument.for_field("page_size", "must not be negative")
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


class PageTokenCodec:
    """Encodes the last row's sort key as a signed token bound to one list's scope.

    The scope (e.g. "patients:name:<caller>:<query>") makes a token from another list,
    ordering or caller invalid; the MAC makes an edited token invalid. Both are a 400.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def encode(self, scope: str, key: Sequence[JsonScalar]) -> str:
        payload = json.dumps(list(key), separators=(",", ":")).encode()
        mac = self._mac(scope, payload)
        return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")

    def decode(self, scope: str, token: str) -> list[JsonScalar]:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except ValueError:
            raise errors.InvalidPageToken() from None
        mac, payload = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(scope, payload)):
            raise errors.InvalidPageToken()
        key = json.loads(payload)
        if not isinstance(key, list):
            raise errors.InvalidPageToken()
        return key

    def _mac(self, scope: str, payload: bytes) -> bytes:
        message = scope.encode() + b"\x00" + payload
        return hmac.new(self._secret, message, hashlib.sha256).digest()[:_MAC_BYTES]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str
