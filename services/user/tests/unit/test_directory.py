"""Reading other accounts: ListUsers (admins only) and GetUser (admins, or yourself)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from medstation_platform.errors import InvalidPageToken
from services.user.tests.unit.accounts import Accounts
from services.user.tests.unit.fakes import FakeDatabase, FixedClock
from user import use_cases
from user.domain import ADMIN, CLINICIAN, AdminRequired, User, UserNotFound
from user.use_cases import Identity


async def _register_many(accounts: Accounts, clock: FixedClock, count: int) -> list[User]:
    users = []
    for index in range(count):
        if index % 2:  # every other pair shares a timestamp: the id must break the tie
            clock.advance(timedelta(seconds=1))
        users.append(await accounts.register())
    return users


def _in_list_order(users: list[User]) -> list[str]:
    return [user.id for user in sorted(users, key=lambda user: (user.created_at, user.id))]


def _tampered(token: str) -> str:
    middle = len(token) // 2
    return token[:middle] + ("B" if token[middle] == "A" else "A") + token[middle + 1 :]


async def test_list_users_pages_through_every_account_exactly_once_in_order(
    accounts: Accounts, identity: Identity, clock: FixedClock, database: FakeDatabase
) -> None:
    admin = await accounts.admin()
    await _register_many(accounts, clock, 7)
    seen: list[str] = []
    page_sizes: list[int] = []
    token = ""

    while True:
        page = await use_cases.list_users(
            identity, admin.principal, page_size=3, page_token=token, role=""
        )
        seen += [user.id for user in page.items]
        page_sizes.append(len(page.items))
        token = page.next_page_token
        if not token:
            break

    assert page_sizes == [3, 3, 2]
    assert seen == _in_list_order(list(database.committed.users.values()))


async def test_list_users_filters_by_role(
    accounts: Accounts, identity: Identity, clock: FixedClock
) -> None:
    admin = await accounts.admin()
    clinicians = await _register_many(accounts, clock, 3)

    admins = await use_cases.list_users(
        identity, admin.principal, page_size=0, page_token="", role=ADMIN
    )
    others = await use_cases.list_users(
        identity, admin.principal, page_size=0, page_token="", role=CLINICIAN
    )

    assert [user.id for user in admins.items] == [admin.user_id]
    assert [user.id for user in others.items] == _in_list_order(clinicians)


async def test_list_users_rejects_a_tampered_page_token(
    accounts: Accounts, identity: Identity, clock: FixedClock
) -> None:
    admin = await accounts.admin()
    await _register_many(accounts, clock, 3)
    first = await use_cases.list_users(
        identity, admin.principal, page_size=1, page_token="", role=""
    )

    with pytest.raises(InvalidPageToken) as raised:
        await use_cases.list_users(
            identity,
            admin.principal,
            page_size=1,
            page_token=_tampered(first.next_page_token),
            role="",
        )

    assert [violation.field for violation in raised.value.violations] == ["page_token"]


async def test_a_page_token_only_continues_the_list_it_came_from(
    accounts: Accounts, identity: Identity, clock: FixedClock
) -> None:
    admin = await accounts.admin()
    await _register_many(accounts, clock, 3)
    all_roles = await use_cases.list_users(
        identity, admin.principal, page_size=1, page_token="", role=""
    )

    with pytest.raises(InvalidPageToken):
        await use_cases.list_users(
            identity,
            admin.principal,
            page_size=1,
            page_token=all_roles.next_page_token,
            role=CLINICIAN,
        )


async def test_clinicians_may_not_list_users(accounts: Accounts, identity: Identity) -> None:
    clinician = await accounts.clinician()

    with pytest.raises(AdminRequired):
        await use_cases.list_users(
            identity, clinician.principal, page_size=0, page_token="", role=""
        )


async def test_get_user_returns_your_own_account(accounts: Accounts, identity: Identity) -> None:
    clinician = await accounts.clinician()

    user = await use_cases.get_user(identity, clinician.principal, clinician.user_id)

    assert user.email == clinician.email


async def test_get_user_hides_other_accounts_from_clinicians(
    accounts: Accounts, identity: Identity
) -> None:
    clinician = await accounts.clinician()
    colleague = await accounts.register()

    with pytest.raises(UserNotFound):
        await use_cases.get_user(identity, clinician.principal, colleague.id)


async def test_admins_get_any_account(accounts: Accounts, identity: Identity) -> None:
    admin = await accounts.admin()
    clinician = await accounts.register()

    user = await use_cases.get_user(identity, admin.principal, clinician.id)

    assert user.email == clinician.email


async def test_get_user_of_an_unknown_id_is_not_found_for_admins(
    accounts: Accounts, identity: Identity
) -> None:
    admin = await accounts.admin()

    with pytest.raises(UserNotFound):
        await use_cases.get_user(identity, admin.principal, "00000000-0000-4000-8000-000000000000")
