"""The caller's own account: reading it and changing the display name or password."""

from __future__ import annotations

from datetime import timedelta

import pytest

from medstation_platform import errors
from services.user.tests.unit.accounts import PASSWORD, Accounts
from services.user.tests.unit.fakes import FakeRevocations, FixedClock
from user import use_cases
from user.domain import InvalidCredentials, RefreshTokenInvalid, WrongCurrentPassword
from user.use_cases import Identity, ProfileChanges

NEW_PASSWORD = "a brand new passphrase"


async def test_get_me_returns_the_callers_account(accounts: Accounts, identity: Identity) -> None:
    session = await accounts.clinician()

    me = await use_cases.get_me(identity, session.principal)

    assert (me.id, me.email) == (session.user_id, session.email)


async def test_update_me_changes_the_display_name(
    accounts: Accounts, identity: Identity, clock: FixedClock
) -> None:
    session = await accounts.clinician()
    before = await use_cases.get_me(identity, session.principal)
    clock.advance(timedelta(minutes=1))

    updated = await use_cases.update_me(
        identity, session.principal, ProfileChanges(display_name="  Dr.  Grace Hopper ")
    )

    assert updated.display_name == "Dr. Grace Hopper"
    assert updated.updated_at > before.updated_at
    assert (await use_cases.get_me(identity, session.principal)).display_name == "Dr. Grace Hopper"


async def test_update_me_rejects_a_blank_display_name(
    accounts: Accounts, identity: Identity
) -> None:
    session = await accounts.clinician()

    with pytest.raises(errors.InvalidArgument) as raised:
        await use_cases.update_me(identity, session.principal, ProfileChanges(display_name=" "))

    assert [violation.field for violation in raised.value.violations] == ["display_name"]


async def test_password_change_requires_the_current_password(
    accounts: Accounts, identity: Identity
) -> None:
    session = await accounts.clinician()
    changes = ProfileChanges(password=NEW_PASSWORD, current_password="not my password")

    with pytest.raises(WrongCurrentPassword) as raised:
        await use_cases.update_me(identity, session.principal, changes)

    assert [violation.field for violation in raised.value.violations] == ["current_password"]
    await accounts.sign_in(session.email, PASSWORD)


async def test_password_change_without_the_current_password_is_refused(
    accounts: Accounts, identity: Identity
) -> None:
    session = await accounts.clinician()

    with pytest.raises(WrongCurrentPassword):
        await use_cases.update_me(
            identity, session.principal, ProfileChanges(password=NEW_PASSWORD)
        )


async def test_a_refused_password_change_keeps_the_other_changes_out_too(
    accounts: Accounts, identity: Identity
) -> None:
    session = await accounts.clinician()
    changes = ProfileChanges(
        display_name="Renamed", password=NEW_PASSWORD, current_password="not my password"
    )

    with pytest.raises(WrongCurrentPassword):
        await use_cases.update_me(identity, session.principal, changes)

    assert (await use_cases.get_me(identity, session.principal)).display_name == "Dr. Ada"


async def test_password_change_replaces_the_password(
    accounts: Accounts, identity: Identity
) -> None:
    session = await accounts.clinician()
    changes = ProfileChanges(password=NEW_PASSWORD, current_password=PASSWORD)

    await use_cases.update_me(identity, session.principal, changes)

    await accounts.sign_in(session.email, NEW_PASSWORD)
    with pytest.raises(InvalidCredentials):
        await accounts.sign_in(session.email, PASSWORD)


async def test_password_change_signs_out_other_sessions_but_keeps_this_one(
    accounts: Accounts, identity: Identity, revocations: FakeRevocations
) -> None:
    current = await accounts.clinician()
    other = await accounts.sign_in(current.email)
    changes = ProfileChanges(password=NEW_PASSWORD, current_password=PASSWORD)

    await use_cases.update_me(identity, current.principal, changes)

    assert revocations.sessions == [other.principal.session_id]
    with pytest.raises(RefreshTokenInvalid):
        await use_cases.refresh(identity, refresh_token=other.tokens.refresh_token)
    await use_cases.refresh(identity, refresh_token=current.tokens.refresh_token)


async def test_display_name_change_keeps_every_session(
    accounts: Accounts, identity: Identity, revocations: FakeRevocations
) -> None:
    current = await accounts.clinician()
    other = await accounts.sign_in(current.email)

    await use_cases.update_me(identity, current.principal, ProfileChanges(display_name="Grace"))

    assert revocations.sessions == []
    await use_cases.refresh(identity, refresh_token=other.tokens.refresh_token)
