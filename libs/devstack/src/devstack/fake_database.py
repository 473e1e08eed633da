"""An in-memory stand-in for a service's database in unit tests, with real transactions.

A unit of work stages its changes on a private copy of the committed tables; `commit`
publishes the copy, leaving the block without committing discards it — the semantics
of `medstation_platform.db.UnitOfWork`, so use cases behave as they do on PostgreSQL.
"""

from __future__ import annotations

from abc import abstractmethod
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection


class Copyable(Protocol):
    def copy(self) -> Self: ...


TablesT = TypeVar("TablesT", bound=Copyable)


class FakeDatabase(Generic[TablesT]):
    """The committed state of the tables, and how many commits made it."""

    def __init__(self, tables: TablesT) -> None:
        self.committed = tables
        self.commits = 0


class StagedUnitOfWork(Generic[TablesT]):
    """Mix in before a service's UnitOfWork class; `bind_tables` builds the fake repositories."""

    def __init__(self, database: FakeDatabase[TablesT]) -> None:
        self._database = database
        self._staged: TablesT | None = None

    @abstractmethod
    def bind_tables(self, tables: TablesT) -> None:
        """Create this unit of work's repositories on the staged copy of the tables."""

    def bind(self, connection: AsyncConnection) -> None:
        raise NotImplementedError("the fake unit of work has no connection")

    async def __aenter__(self) -> Self:
        self._begin()
        return self

    async def commit(self) -> None:
        if self._staged is None:
            raise RuntimeError("commit() outside of `async with`")
        self._database.committed = self._staged
        self._database.commits += 1
        self._begin()  # like a connection after COMMIT: later changes need another commit

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._staged = None  # rollback: whatever was not committed is gone

    def _begin(self) -> None:
        self._staged = self._database.committed.copy()
        self.bind_tables(self._staged)
