"""Async SQLAlchemy engine and the unit of work: one use case, one transaction."""

from __future__ import annotations

import asyncio
import logging
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

logger = logging.getLogger(__name__)


class DatabaseUnavailable(errors.Unavailable):
    reason = "DATABASE_UNAVAILABLE"
    default_message = "the database is unavailable; retry later"


def build_engine(url: str, *, pool_size: int, statement_timeout_ms: int) -> AsyncEngine:
    """An engine whose every connection is bounded in time.

    `statement_timeout` keeps a slow query from outliving the RPC deadline.

    No pre-ping: it costs a round trip on every checkout (a quarter of a cheap read's
    CPU). The pool recovers from a PostgreSQL restart without it: the first statement on
    a dead connection fails as DatabaseUnavailable (UNAVAILABLE, which clients and the
    gateway retry for reads), and SQLAlchemy then invalidates every pooled connection
    opened before the failure, so the next checkouts reconnect.
    """
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=5,
        # Errors are logged; their SQL parameters can be PHI (note and message text).
        hide_parameters=True,
        pool_recycle=1800,
        connect_args={
            "connect_timeout": 5,
            "options": f"-c statement_timeout={statement_timeout_ms}",
        },
    )


# How long closing a service waits for its units of work to hand their connections back.
RETURN_WAIT_SECONDS = 5.0
_RETURN_POLL_SECONDS = 0.01


async def dispose_engine(engine: AsyncEngine, *, wait_seconds: float = RETURN_WAIT_SECONDS) -> None:
    """Closes `engine`'s connections once the checked-out ones are back in the pool.

    A server stopped without grace cancels its handlers, and they hand their connections
    back a moment later, after their rollback. Disposing before then leaves those
    connections in a pool nobody closes: the garbage collector drops them still open.
    """
    checked_out = getattr(engine.pool, "checkedout", lambda: 0)
    for _ in range(round(wait_seconds / _RETURN_POLL_SECONDS)):
        if checked_out() == 0:
            break
        await asyncio.sleep(_RETURN_POLL_SECONDS)
    await engine.dispose()


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
        self._autocommit = False

    def autocommit(self) -> Self:
        """Let each statement commit on its own, with no BEGIN and no COMMIT.

        For use cases that only read, or whose one write is a single statement (an audit
        row recorded by the statement that checks access): two round trips fewer, about a
        fifth of a cheap read's cost. `commit()` is then a no-op, so the use case reads
        the same either way.
        """
        self._autocommit = True
        return self

    @abstractmethod
    def bind(self, connection: AsyncConnection) -> None:
        """Create this unit of work's repositories on the transaction's connection."""

    async def __aenter__(self) -> Self:
        try:
            self._connection = await self._engine.connect()
            if self._autocommit:
                await self._connection.execution_options(isolation_level="AUTOCOMMIT")
            else:
                self._transaction = await self._connection.begin()
        except (sa_exc.OperationalError, sa_exc.InterfaceError, OSError) as error:
            await self._close()
            raise DatabaseUnavailable() from error
        except BaseException:
            # Cancelled (the caller went away) between checkout and BEGIN: no __aexit__
            # will run, so the connection goes back to the pool here or never.
            await self._close()
            raise
        self.bind(self._connection)
        return self

    async def commit(self) -> None:
        if self._autocommit and self._connection is not None:
            return  # every statement has committed already
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
            try:
                if self._transaction is not None and self._transaction.is_active:
                    await self._transaction.rollback()
            finally:
                await self._close()
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as error:
            # The connection died after the block's last statement (a database restart).
            # A rollback only discards, so a block that finished has lost nothing: its
            # result stands. SQLAlchemy has invalidated the connection already.
            if exc is None:
                logger.warning("connection lost after the unit of work's last statement")
                return
            raise DatabaseUnavailable() from error
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            raise DatabaseUnavailable() from exc

    async def _close(self) -> None:
        connection, self._connection, self._transaction = self._connection, None, None
        if connection is not None:
            await connection.close()
