"""argon2id password hashing, off the event loop (each hash costs tens of milliseconds)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        # argon2id with OWASP's recommended minimum (19 MiB, 2 passes): strong against
        # GPU cracking while keeping sign-in fast on small nodes.
        self._hasher = hasher or PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
        # Verified against when the email is unknown, so both paths cost the same time.
        self._decoy = self._hasher.hash("decoy-password-for-constant-time")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return (
                await asyncio.to_thread(self._hasher.verify, password_hash or self._decoy, password)
                and password_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False
