"""The fake unit of work keeps the real one's promise: only committed changes persist."""

from __future__ import annotations

from datetime import UTC, datetime

from services.user.tests.unit.fakes import FakeDatabase
from user.domain import CLINICIAN, User


def _user() -> User:
    now = datetime.now(UTC)
    return User(
        id="6d1f4c0e-8a0f-4a53-9a1e-3f1a3f0c2b11",
        email="ada@example.org",
        display_name="Ada",
        role=CLINICIAN,
        active=True,
        password_hash="hash",
        created_at=now,
        updated_at=now,
    )


async def test_changes_left_uncommitted_are_discarded() -> None:
    database = FakeDatabase()

    async with database.unit_of_work() as uow:
        await uow.users.add(_user())

    async with database.unit_of_work() as uow:
        assert await uow.users.get_by_email("ada@example.org") is None


async def test_committed_changes_persist_and_later_ones_need_another_commit() -> None:
    database = FakeDatabase()
    user = _user()

    async with database.unit_of_work() as uow:
        await uow.users.add(user)
        await uow.commit()
        await uow.users.save(user.changed(user.created_at, display_name="Grace"))

    async with database.unit_of_work() as uow:
        assert await uow.users.get(user.id) == user


async def test_a_transaction_does_not_see_changes_staged_by_another() -> None:
    database = FakeDatabase()

    async with database.unit_of_work() as writer, database.unit_of_work() as reader:
        await writer.users.add(_user())
        assert await reader.users.get_by_email("ada@example.org") is None
