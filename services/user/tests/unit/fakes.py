"""In-memory stand-ins for the user service's I/O: the unit of work, Redis, the clock.

The fake repositories subclass the real ones so mypy holds them to the same method
signatures; they never touch the connection the real ones would use.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from devstack import fake_database
from devstack.fake_database import StagedUnitOfWork
from user.domain import EmailAlreadyRegistered, RefreshToken, SigningKey, User
from user.repository import (
    RefreshTokenRepository,
    SigningKeyRepository,
    UserRepository,
    UserUnitOfWork,
)

_TokenFilter = Callable[[RefreshToken], bool]


@dataclass
class Tables:
    """Rows by primary key: what the database holds (committed) or a transaction sees."""

    users: dict[str, User] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    signing_keys: dict[str, SigningKey] = field(default_factory=dict)

    def copy(self) -> Tables:
        # Rows are frozen dataclasses: copying the dicts isolates a transaction.
        return Tables(dict(self.users), dict(self.refresh_tokens), dict(self.signing_keys))


class FakeUsers(UserRepository):
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def add(self, user: User) -> None:
        if any(existing.email == user.email for existing in self._tables.users.values()):
            raise EmailAlreadyRegistered()
        self._tables.users[user.id] = user

    async def get(self, user_id: str) -> User | None:
        return self._tables.users.get(user_id)

    async def get_by_email(self, email: str) -> User | None:
        return next((u for u in self._tables.users.values() if u.email == email), None)

    async def save(self, user: User) -> None:
        if user.id in self._tables.users:
            self._tables.users[user.id] = user

    async def list_page(
        self, *, limit: int, after: tuple[datetime, str] | None, role: str | None
    ) -> list[User]:
        users = sorted(self._tables.users.values(), key=lambda u: (u.created_at, u.id))
        if role:
            users = [user for user in users if user.role == role]
        if after is not None:
            users = [user for user in users if (user.created_at, user.id) > after]
        return users[:limit]


class FakeRefreshTokens(RefreshTokenRepository):
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def add(self, token: RefreshToken) -> None:
        self._tables.refresh_tokens[token.id] = token

    async def get_for_update(self, token_hash: bytes) -> RefreshToken | None:
        tokens = self._tables.refresh_tokens.values()
        return next((token for token in tokens if token.token_hash == token_hash), None)

    async def mark_rotated(self, token_id: str, at: datetime) -> None:
        token = self._tables.refresh_tokens[token_id]
        self._tables.refresh_tokens[token_id] = replace(token, rotated_at=at)

    async def revoke_family(self, family_id: str, at: datetime) -> None:
        for token in self._live(lambda token: token.family_id == family_id):
            self._tables.refresh_tokens[token.id] = replace(token, revoked_at=at)

    async def revoke_user_families(
        self, user_id: str, at: datetime, *, keep_family: str | None = None
    ) -> list[str]:
        revoked = self._live(
            lambda token: token.user_id == user_id and token.family_id != keep_family
        )
        for token in revoked:
            self._tables.refresh_tokens[token.id] = replace(token, revoked_at=at)
        return sorted({token.family_id for token in revoked})

    def _live(self, wanted: _TokenFilter) -> list[RefreshToken]:
        tokens = self._tables.refresh_tokens.values()
        return [token for token in tokens if token.revoked_at is None and wanted(token)]


class FakeSigningKeys(SigningKeyRepository):
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def lock(self) -> None:
        """One process, one event loop: nothing can race key creation here."""

    async def published(self) -> list[SigningKey]:
        keys = self._tables.signing_keys.values()
        return sorted(keys, key=lambda key: key.created_at, reverse=True)

    async def add(self, key: SigningKey) -> None:
        self._tables.signing_keys[key.kid] = key


class FakeDatabase(fake_database.FakeDatabase[Tables]):
    def __init__(self) -> None:
        super().__init__(Tables())

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)


class FakeAccountReads:
    """Reads committed accounts, like the shared reads outside any transaction."""

    def __init__(self, database: FakeDatabase) -> None:
        self._database = database

    async def get(self, user_id: str) -> User | None:
        return self._database.committed.users.get(user_id)


class FakeUnitOfWork(StagedUnitOfWork[Tables], UserUnitOfWork):
    """Stages changes on a private copy; `commit` publishes it, leaving discards it."""

    def bind_tables(self, tables: Tables) -> None:
        self.users = FakeUsers(tables)
        self.refresh_tokens = FakeRefreshTokens(tables)
        self.signing_keys = FakeSigningKeys(tables)


class FakeThrottle:
    """Counts failed sign-ins per email; blocks from `limit` failures on, like LoginThrottle."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.failures: dict[str, int] = {}

    async def is_blocked(self, email: str) -> bool:
        return self.failures.get(email, 0) >= self.limit

    async def record_failure(self, email: str) -> None:
        self.failures[email] = self.failures.get(email, 0) + 1


class FakeRevocations:
    """Records what would be published to the shared revocation list."""

    def __init__(self) -> None:
        self.sessions: list[str] = []

    async def revoke_sessions(self, session_ids: Collection[str]) -> None:
        self.sessions.extend(session_ids)


class FixedClock:
    """Time stands still until a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta
