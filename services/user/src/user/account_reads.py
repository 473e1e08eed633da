"""Reads of callers' own accounts, shared by concurrent requests.

GetMe, the call every client makes on every start and page load, re-reads the caller's
account so a deactivation bites at once. Through a unit of work that read cost a
SQLAlchemy connection checkout, an isolation-level switch and a reset around a 60 µs
statement; here concurrent reads share one statement on the statement pool (one round
trip per batch, whatever its size), and a quiet service still reads each at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from prometheus_client import CollectorRegistry
from sqlalchemy import ARRAY, Uuid, bindparam, cast, select

from medstation_platform.group_commit import GroupCommit
from medstation_platform.hot_sql import HotQuery
from medstation_platform.statement_pool import StatementPool
from user import tables
from user.domain import User
from user.repository import user_from_row

_USERS_BY_ID = HotQuery(
    select(tables.users).where(
        tables.users.c.id == cast(bindparam("ids"), ARRAY(Uuid(as_uuid=False))).any_()
    )
)


class SharedAccountReads:
    """Accounts by id, read a batch at a time."""

    def __init__(
        self, statements: StatementPool, registry: CollectorRegistry | None = None
    ) -> None:
        self._statements = statements
        self._reads: GroupCommit[str, User | None] = GroupCommit(
            self._read_batch,
            name="account_reads",
            registry=registry,
            span_name="SELECT medstation_user",
            span_attributes=_USERS_BY_ID.span_attributes("medstation_user"),
        )

    async def get(self, user_id: str) -> User | None:
        """The account, or None if there is none with that id."""
        try:
            user_id = str(uuid.UUID(user_id))
        except ValueError:
            return None  # no account has it; and one bad id must not fail its batch
        return await self._reads.submit(user_id)

    async def close(self) -> None:
        await self._reads.close()

    async def _read_batch(self, user_ids: Sequence[str]) -> list[User | None]:
        rows = await self._statements.fetch_all(
            _USERS_BY_ID, {"ids": sorted(set(user_ids))}, traced=False
        )
        found = {str(row.id): user_from_row(row) for row in rows}
        return [found.get(user_id) for user_id in user_ids]
