from __future__ import annotations

import pytest

from medstation_platform import errors
from services.user.tests.unit.accounts import PASSWORD, Accounts
from services.user.tests.unit.fakes import FakeDatabase
from user import use_cases
from user.domain import CLINICIAN, EmailAlreadyRegistered
from user.use_cases import Identity


async def test_register_creates_an_active_clinician(accounts: Accounts) -> None:
    user = await accounts.register("ada@example.org", display_name="  Ada   Lovelace ")

    assert (user.email, user.role, user.active) == ("ada@example.org", CLINICIAN, True)
    assert user.display_name == "Ada Lovelace"


async def test_register_normalizes_the_email(accounts: Accounts) -> None:
    user = await accounts.register("  Ada.Lovelace@Example.ORG ")

    assert user.email == "ada.lovelace@example.org"


async def test_register_treats_emails_differing_only_in_case_as_taken(
    accounts: Accounts, database: FakeDatabase
) -> None:
    await accounts.register("grace@example.org")

    with pytest.raises(EmailAlreadyRegistered):
        await accounts.register("GRACE@Example.org")
    assert len(database.committed.users) == 1


async def test_register_stores_a_password_hash_that_signs_in(
    accounts: Accounts, database: FakeDatabase
) -> None:
    user = await accounts.register(password=PASSWORD)

    stored = database.committed.users[user.id]
    assert PASSWORD not in stored.password_hash
    assert (await accounts.sign_in(user.email)).user_id == user.id


@pytest.mark.parametrize(
    ("email", "display_name", "field"),
    [
        pytest.param("not-an-email", "Dr. Ada", "email", id="malformed-email"),
        pytest.param("ada@example.org", "   ", "display_name", id="blank-display-name"),
        pytest.param("ada@example.org", "Ada\x00", "display_name", id="nul-in-display-name"),
        pytest.param("ada@example.org", "Ada\x1b[2J", "display_name", id="escape-in-name"),
    ],
)
async def test_register_names_the_invalid_field(
    identity: Identity, email: str, display_name: str, field: str
) -> None:
    with pytest.raises(errors.InvalidArgument) as raised:
        await use_cases.register(
            identity, email=email, password=PASSWORD, display_name=display_name
        )

    assert [violation.field for violation in raised.value.violations] == [field]
