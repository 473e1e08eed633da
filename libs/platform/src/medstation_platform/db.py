"""Async SQLAlchemy engine and the unit of work: one use case, one transaction."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncTransaction,
    create_async_engine,
)

from medstation_platform import errors


class DatabaseUnavailable(errors.Unavailable):
    reason = "DATABASE_UNAVAILABLE"
    default_message = "the database is unavailable; retry later"


def build_engine(url: str, *, pool_size: int, statement_timeout_ms: int) -> AsyncEngine:
    """An engine whose every connection is bounded in time.

    `statement_timeout` keeps a slow query from outliving the RPC deadline; pre-ping
    lets the pool recover by itself after PostgreSQL restarts.
    """
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=5,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={
            "connect_timeout": 5,
            "options": f"-c statement_timeout={statement_timeout_ms}",
        },
    )


class UnitOfWork(ABC):
    """One transaction around one use case.

    Repositories stage changes on the connection; nothing is durable until `commit()`.
    Leaving the block without committing rolls back. Services subclass this and build
    their repositories in `bind`.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self._transaction: AsyncTransaction | None = None

    @abstractmethod
    def bind(self, connection: AsyncConnection) -> None:
        """Create this unit of work's repositories on the transaction's connection."""

    async def __aenter__(self) -> Self:
        try:
            self._connection = await self._engine.connect()
            self._transaction = await self._connection.begin()
        except (sa_exc.OperationalError, sa_exc.InterfaceError, OSError) as error:
            await self._close()
            raise DatabaseUnavailable() from error
        self.bind(self._connection)
        return self

    async def commit(self) -> None:
        if self._transaction is None:
            raise RuntimeError("commit() outside of `async with`")
        await self._transaction.commit()
        self._transaction = None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if self._transaction is not None and self._transaction.is_active:
                await self._transaction.rollback()
        finally:
            await self._close()
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            raise DatabaseUnavailable() from exc

    async def _close(self) -> None:
        connection, self._connection, self._transaction = self._connection, None, None
        if connection is not None:
            await connection.close()
