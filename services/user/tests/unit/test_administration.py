"""Admins managing accounts: roles, deactivation, and the configured admin account."""

from __future__ import annotations

import pytest

from services.user.tests.unit.accounts import ADMIN_EMAIL, ADMIN_PASSWORD, Accounts
from services.user.tests.unit.fakes import FakeDatabase, FakeRevocations
from user import use_cases
from user.domain import (
    ADMIN,
    CLINICIAN,
    AccountInactive,
    AdminRequired,
    InvalidCredentials,
    OwnAccountProtected,
    RefreshTokenInvalid,
)
from user.use_cases import Identity


async def test_admin_promotes_a_clinician(accounts: Accounts, identity: Identity) -> None:
    admin = await accounts.admin()
    clinician = await accounts.register()

    promoted = await use_cases.set_role(identity, admin.principal, clinician.id, ADMIN)

    assert promoted.role == ADMIN
    assert (await use_cases.get_user(identity, admin.principal, clinician.id)).role == ADMIN


async def test_set_role_ends_the_targets_sessions(
    accounts: Accounts, identity: Identity, revocations: FakeRevocations
) -> None:
    admin = await accounts.admin()
    clinician = await accounts.clinician()

    await use_cases.set_role(identity, admin.principal, clinician.user_id, ADMIN)

    assert revocations.sessions == [clinician.principal.session_id]
    with pytest.raises(RefreshTokenInvalid):
        await use_cases.refresh(identity, refresh_token=clinician.tokens.refresh_token)
    promoted = await accounts.sign_in(clinician.email)
    assert promoted.principal.role == ADMIN


async def test_set_role_to_the_current_role_changes_nothing(
    accounts: Accounts, identity: Identity, revocations: FakeRevocations
) -> None:
    admin = await accounts.admin()
    clinician = await accounts.register()

    user = await use_cases.set_role(identity, admin.principal, clinician.id, CLINICIAN)

    assert user == clinician
    assert revocations.sessions == []


async def test_clinicians_may_not_set_roles(accounts: Accounts, identity: Identity) -> None:
    clinician = await accounts.clinician()

    with pytest.raises(AdminRequired):
        await use_cases.set_role(identity, clinician.principal, clinician.user_id, ADMIN)


async def test_admins_cannot_change_their_own_role(accounts: Accounts, identity: Identity) -> None:
    admin = await accounts.admin()

    with pytest.raises(OwnAccountProtected):
        await use_cases.set_role(identity, admin.principal, admin.user_id, CLINICIAN)


async def test_a_demoted_admin_loses_admin_rights_before_the_token_expires(
    accounts: Accounts, identity: Identity
) -> None:
    admin = await accounts.admin()
    other_admin = await accounts.clinician()
    await use_cases.set_role(identity, admin.principal, other_admin.user_id, ADMIN)
    promoted = await accounts.sign_in(other_admin.email)

    await use_cases.set_role(identity, admin.principal, other_admin.user_id, CLINICIAN)

    with pytest.raises(AdminRequired):
        await use_cases.list_users(
            identity, promoted.principal, page_size=0, page_token="", role=""
        )


async def test_a_deactivated_user_is_locked_out_at_once(
    accounts: Accounts, identity: Identity, revocations: FakeRevocations
) -> None:
    admin = await accounts.admin()
    clinician = await accounts.clinician()

    deactivated = await use_cases.deactivate(identity, admin.principal, clinician.user_id)

    assert not deactivated.active
    assert revocations.sessions == [clinician.principal.session_id]
    with pytest.raises(AccountInactive):
        await use_cases.get_me(identity, clinician.principal)
    with pytest.raises(RefreshTokenInvalid):
        await use_cases.refresh(identity, refresh_token=clinician.tokens.refresh_token)
    with pytest.raises(InvalidCredentials):
        await accounts.sign_in(clinician.email)


async def test_clinicians_may_not_deactivate_accounts(
    accounts: Accounts, identity: Identity
) -> None:
    clinician = await accounts.clinician()
    colleague = await accounts.register()

    with pytest.raises(AdminRequired):
        await use_cases.deactivate(identity, clinician.principal, colleague.id)


async def test_admins_cannot_deactivate_themselves(accounts: Accounts, identity: Identity) -> None:
    admin = await accounts.admin()

    with pytest.raises(OwnAccountProtected):
        await use_cases.deactivate(identity, admin.principal, admin.user_id)


async def test_ensure_admin_creates_the_admin_once(
    identity: Identity, database: FakeDatabase
) -> None:
    for _ in range(2):
        await use_cases.ensure_admin(identity, email=ADMIN_EMAIL, password=ADMIN_PASSWORD)

    users = list(database.committed.users.values())
    assert [(user.email, user.role, user.active) for user in users] == [(ADMIN_EMAIL, ADMIN, True)]


async def test_ensure_admin_promotes_and_reactivates_an_existing_account(
    accounts: Accounts, identity: Identity, database: FakeDatabase
) -> None:
    admin = await accounts.admin()
    clinician = await accounts.register("Head.Of.Clinic@example.org")
    await use_cases.deactivate(identity, admin.principal, clinician.id)

    await use_cases.ensure_admin(
        identity, email="head.of.clinic@example.org", password="ignored: the password is kept"
    )

    user = database.committed.users[clinician.id]
    assert (user.role, user.active) == (ADMIN, True)
    await accounts.sign_in(clinician.email)
