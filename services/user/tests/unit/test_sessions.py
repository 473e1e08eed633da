"""Signing in, rotating refresh tokens, signing out."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.user.tests.unit.accounts import PASSWORD, Accounts, new_email
from services.user.tests.unit.conftest import SESSION_ABSOLUTE, SESSION_IDLE
from services.user.tests.unit.fakes import FakeRevocations, FakeThrottle, FixedClock
from user import use_cases
from user.domain import (
    InvalidCredentials,
    LoginThrottled,
    RefreshTokenInvalid,
    RefreshTokenReused,
)
from user.use_cases import Identity


async def _deactivated(accounts: Accounts, identity: Identity) -> str:
    admin = await accounts.admin()
    user = await accounts.register()
    await use_cases.deactivate(identity, admin.principal, user.id)
    return user.email


async def test_login_issues_a_token_pair_for_the_account(accounts: Accounts) -> None:
    user = await accounts.register()

    session = await accounts.sign_in(user.email)

    assert session.principal.user_id == user.id
    assert session.tokens.refresh_token
    assert session.tokens.expires_in == 15 * 60


async def test_login_accepts_the_email_in_another_case(accounts: Accounts) -> None:
    user = await accounts.register("ada@example.org")

    assert (await accounts.sign_in("ADA@example.ORG")).user_id == user.id


async def test_login_gives_the_same_error_for_every_credential_problem(
    accounts: Accounts, identity: Identity
) -> None:
    registered = await accounts.register()
    attempts = [
        (new_email("nobody"), PASSWORD),
        (registered.email, "not the password"),
        (await _deactivated(accounts, identity), PASSWORD),
    ]

    for email, password in attempts:
        with pytest.raises(InvalidCredentials) as raised:
            await use_cases.login(identity, email=email, password=password)
        assert raised.value.message == InvalidCredentials.default_message


async def test_failed_logins_are_counted_per_email(
    accounts: Accounts, identity: Identity, throttle: FakeThrottle
) -> None:
    user = await accounts.register("ada@example.org")

    for _ in range(2):
        with pytest.raises(InvalidCredentials):
            await use_cases.login(identity, email="Ada@Example.org", password="wrong password")
    await accounts.sign_in(user.email)

    assert throttle.failures == {"ada@example.org": 2}


async def test_login_is_throttled_after_the_failure_limit_even_with_the_right_password(
    accounts: Accounts, identity: Identity, throttle: FakeThrottle
) -> None:
    user = await accounts.register()
    for _ in range(throttle.limit):
        with pytest.raises(InvalidCredentials):
            await use_cases.login(identity, email=user.email, password="wrong password")

    with pytest.raises(LoginThrottled):
        await accounts.sign_in(user.email)


async def test_unknown_emails_are_throttled_too(identity: Identity, throttle: FakeThrottle) -> None:
    email = new_email("nobody")
    for _ in range(throttle.limit):
        with pytest.raises(InvalidCredentials):
            await use_cases.login(identity, email=email, password=PASSWORD)

    with pytest.raises(LoginThrottled):
        await use_cases.login(identity, email=email, password=PASSWORD)
    assert throttle.failures == {email: throttle.limit}


async def test_refresh_rotates_into_a_new_pair_of_the_same_session(
    accounts: Accounts, identity: Identity
) -> None:
    session = await accounts.clinician()

    renewed = await use_cases.refresh(identity, refresh_token=session.tokens.refresh_token)

    assert renewed.refresh_token != session.tokens.refresh_token
    principal = await accounts.principal(renewed.access_token)
    assert (principal.user_id, principal.session_id) == (
        session.user_id,
        session.principal.session_id,
    )


async def test_refresh_token_reuse_revokes_the_whole_session(
    accounts: Accounts, identity: Identity, revocations: FakeRevocations
) -> None:
    session = await accounts.clinician()
    renewed = await use_cases.refresh(identity, refresh_token=session.tokens.refresh_token)

    with pytest.raises(RefreshTokenReused):
        await use_cases.refresh(identity, refresh_token=session.tokens.refresh_token)

    assert revocations.sessions == [session.principal.session_id]
    with pytest.raises(RefreshTokenInvalid):
        await use_cases.refresh(identity, refresh_token=renewed.refresh_token)


async def test_refresh_token_reuse_leaves_other_sessions_alone(
    accounts: Accounts, identity: Identity
) -> None:
    session = await accounts.clinician()
    other = await accounts.sign_in(session.email)
    await use_cases.refresh(identity, refresh_token=session.tokens.refresh_token)

    with pytest.raises(RefreshTokenReused):
        await use_cases.refresh(identity, refresh_token=session.tokens.refresh_token)

    await use_cases.refresh(identity, refresh_token=other.tokens.refresh_token)


async def test_refresh_with_an_unknown_token_is_invalid(identity: Identity) -> None:
    with pytest.raises(RefreshTokenInvalid):
        await use_cases.refresh(identity, refresh_token="never-issued")


async def test_refresh_within_the_idle_time_works(
    accounts: Accounts, identity: Identity, clock: FixedClock
) -> None:
    session = await accounts.clinician()

    clock.advance(SESSION_IDLE - timedelta(seconds=1))

    renewed = await use_cases.refresh(identity, refresh_token=session.tokens.refresh_token)
    assert renewed.refresh_token != session.tokens.refresh_token


async def test_a_session_idle_for_30_minutes_has_ended(
    accounts: Accounts, identity: Identity, clock: FixedClock
) -> None:
    session = await accounts.clinician()

    clock.advance(SESSION_IDLE)

    with pytest.raises(RefreshTokenInvalid):
        await use_cases.refresh(identity, refresh_token=session.tokens.refresh_token)


async def test_each_refresh_restarts_the_idle_time(
    accounts: Accounts, identity: Identity, clock: FixedClock
) -> None:
    session = await accounts.clinician()
    token = session.tokens.refresh_token
    for _ in range(3):
        clock.advance(SESSION_IDLE - timedelta(minutes=1))
        token = (await use_cases.refresh(identity, refresh_token=token)).refresh_token

    clock.advance(SESSION_IDLE)

    with pytest.raises(RefreshTokenInvalid):
        await use_cases.refresh(identity, refresh_token=token)


async def test_an_active_session_ends_12_hours_after_sign_in(
    accounts: Accounts, identity: Identity, clock: FixedClock
) -> None:
    session = await accounts.clinician()
    signed_in_at = clock()
    token = session.tokens.refresh_token
    step = SESSION_IDLE - timedelta(minutes=1)
    while clock() + step < signed_in_at + SESSION_ABSOLUTE:
        clock.advance(step)
        token = (await use_cases.refresh(identity, refresh_token=token)).refresh_token

    # The last token was issued less than the idle time ago, but the session is over.
    clock.now = signed_in_at + SESSION_ABSOLUTE

    with pytest.raises(RefreshTokenInvalid):
        await use_cases.refresh(identity, refresh_token=token)


async def test_signing_in_again_starts_a_new_12_hours(
    accounts: Accounts, identity: Identity, clock: FixedClock
) -> None:
    session = await accounts.clinician()
    clock.advance(SESSION_ABSOLUTE)

    # Not accounts.sign_in: it checks the access token against the wall clock, hours behind.
    again = await use_cases.login(identity, email=session.email, password=PASSWORD)

    clock.advance(SESSION_IDLE - timedelta(seconds=1))
    renewed = await use_cases.refresh(identity, refresh_token=again.refresh_token)
    assert renewed.refresh_token != again.refresh_token


async def test_logout_revokes_the_session(
    accounts: Accounts, identity: Identity, revocations: FakeRevocations
) -> None:
    session = await accounts.clinician()

    await use_cases.logout(identity, refresh_token=session.tokens.refresh_token)

    assert revocations.sessions == [session.principal.session_id]
    with pytest.raises(RefreshTokenInvalid):
        await use_cases.refresh(identity, refresh_token=session.tokens.refresh_token)


async def test_logout_with_an_earlier_token_of_the_session_ends_it_too(
    accounts: Accounts, identity: Identity
) -> None:
    session = await accounts.clinician()
    renewed = await use_cases.refresh(identity, refresh_token=session.tokens.refresh_token)

    await use_cases.logout(identity, refresh_token=session.tokens.refresh_token)

    with pytest.raises(RefreshTokenInvalid):
        await use_cases.refresh(identity, refresh_token=renewed.refresh_token)


async def test_logout_with_an_unknown_token_does_nothing(
    identity: Identity, revocations: FakeRevocations
) -> None:
    await use_cases.logout(identity, refresh_token="never-issued")

    assert revocations.sessions == []


async def test_each_login_starts_a_separate_session(accounts: Accounts) -> None:
    first = await accounts.clinician()

    second = await accounts.sign_in(first.email)

    assert second.principal.session_id != first.principal.session_id
