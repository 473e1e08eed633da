"""Every SQL statement of the user service. Repositories stage; the unit of work commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, exc, func, insert, literal, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from medstation_platform.db import UnitOfWork
from medstation_platform.hot_sql import HotQuery, fetch_first
from user import tables
from user.domain import EmailAlreadyRegistered, RefreshToken, SigningKey, User


def user_from_row(row: Any) -> User:
    return User(
        id=str(row.id),
        email=row.email,
        display_name=row.display_name,
        role=row.role,
        active=row.active,
        password_hash=row.password_hash,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _refresh_token(row: Any) -> RefreshToken:
    return RefreshToken(
        id=str(row.id),
        family_id=str(row.family_id),
        user_id=str(row.user_id),
        token_hash=row.token_hash,
        created_at=row.created_at,
        expires_at=row.expires_at,
        session_expires_at=row.session_expires_at,
        rotated_at=row.rotated_at,
        revoked_at=row.revoked_at,
    )


# Every authenticated call re-reads its caller (deactivation bites at once): the hottest
# statement of the service.
_USER_BY_ID = HotQuery(select(tables.users).where(tables.users.c.id == bindparam("user_id")))


class UserRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, user: User) -> None:
        try:
            async with self._connection.begin_nested():
                await self._connection.execute(insert(tables.users).values(**vars(user)))
        except exc.IntegrityError:
            raise EmailAlreadyRegistered() from None

    async def get(self, user_id: str) -> User | None:
        row = await fetch_first(self._connection, _USER_BY_ID, {"user_id": user_id})
        return None if row is None else user_from_row(row)

    async def get_by_email(self, email: str) -> User | None:
        query = select(tables.users).where(tables.users.c.email == email)
        row = (await self._connection.execute(query)).first()
        return None if row is None else user_from_row(row)

    async def save(self, user: User) -> None:
        values = {key: value for key, value in vars(user).items() if key != "id"}
        await self._connection.execute(
            update(tables.users).where(tables.users.c.id == user.id).values(**values)
        )

    async def list_page(
        self, *, limit: int, after: tuple[datetime, str] | None, role: str | None
    ) -> list[User]:
        """Users by (created_at, id): stable across pages while users are added."""
        users = tables.users
        query = select(users).order_by(users.c.created_at, users.c.id).limit(limit)
        if role:
            query = query.where(users.c.role == role)
        if after is not None:
            created_at, user_id = after
            boundary = tuple_(
                literal(created_at, users.c.created_at.type), literal(user_id, users.c.id.type)
            )
            query = query.where(tuple_(users.c.created_at, users.c.id) > boundary)
        return [user_from_row(row) for row in await self._connection.execute(query)]


class RefreshTokenRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, token: RefreshToken) -> None:
        await self._connection.execute(insert(tables.refresh_tokens).values(**vars(token)))

    async def get_for_update(self, token_hash: bytes) -> RefreshToken | None:
        """Locks the row: two concurrent refreshes with one token cannot both rotate it."""
        query = (
            select(tables.refresh_tokens)
            .where(tables.refresh_tokens.c.token_hash == token_hash)
            .with_for_update()
        )
        row = (await self._connection.execute(query)).first()
        return None if row is None else _refresh_token(row)

    async def mark_rotated(self, token_id: str, at: datetime) -> None:
        await self._connection.execute(
            update(tables.refresh_tokens)
            .where(tables.refresh_tokens.c.id == token_id)
            .values(rotated_at=at)
        )

    async def revoke_family(self, family_id: str, at: datetime) -> None:
        tokens = tables.refresh_tokens
        await self._connection.execute(
            update(tokens)
            .where(and_(tokens.c.family_id == family_id, tokens.c.revoked_at.is_(None)))
            .values(revoked_at=at)
        )

    async def revoke_user_families(
        self, user_id: str, at: datetime, *, keep_family: str | None = None
    ) -> list[str]:
        """Revokes the user's live sessions (all, or all but one); returns their ids."""
        tokens = tables.refresh_tokens
        condition = and_(tokens.c.user_id == user_id, tokens.c.revoked_at.is_(None))
        if keep_family is not None:
            condition = and_(condition, tokens.c.family_id != keep_family)
        result = await self._connection.execute(
            update(tokens).where(condition).values(revoked_at=at).returning(tokens.c.family_id)
        )
        return sorted({str(family_id) for (family_id,) in result})


class SigningKeyRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def lock(self) -> None:
        """Serializes key creation between replicas starting at the same time."""
        await self._connection.execute(select(func.pg_advisory_xact_lock(51_051)))

    async def published(self) -> list[SigningKey]:
        keys = tables.signing_keys
        query = select(keys).where(keys.c.retired_at.is_(None)).order_by(keys.c.created_at.desc())
        return [
            SigningKey(
                kid=row.kid,
                private_key_pem=row.private_key_pem,
                public_jwk=dict(row.public_jwk),
                created_at=row.created_at,
            )
            for row in await self._connection.execute(query)
        ]

    async def add(self, key: SigningKey) -> None:
        await self._connection.execute(
            insert(tables.signing_keys).values(
                kid=key.kid,
                private_key_pem=key.private_key_pem,
                public_jwk=key.public_jwk,
                created_at=key.created_at,
            )
        )


class UserUnitOfWork(UnitOfWork):
    users: UserRepository
    refresh_tokens: RefreshTokenRepository
    signing_keys: SigningKeyRepository

    def bind(self, connection: AsyncConnection) -> None:
        self.users = UserRepository(connection)
        self.refresh_tokens = RefreshTokenRepository(connection)
        self.signing_keys = SigningKeyRepository(connection)
