"""Signing up and signing in through the use cases, as a client of the service would."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from medstation_platform.auth.principal import Principal
from medstation_platform.auth.tokens import TokenVerifier
from user import use_cases
from user.domain import IssuedTokens, User
from user.use_cases import Identity

PASSWORD = "correct horse battery staple"
ADMIN_EMAIL = "admin@medstation.test"
ADMIN_PASSWORD = "admin password for unit tests"


def new_email(label: str = "clinician") -> str:
    return f"{label}-{secrets.token_hex(4)}@example.org"


@dataclass(frozen=True)
class SignedIn:
    """One signed-in session: its tokens and the principal its access token proves."""

    email: str
    tokens: IssuedTokens
    principal: Principal

    @property
    def user_id(self) -> str:
        return self.principal.user_id


class Accounts:
    def __init__(self, identity: Identity, verifier: TokenVerifier) -> None:
        self._identity = identity
        self._verifier = verifier

    async def register(
        self, email: str | None = None, *, password: str = PASSWORD, display_name: str = "Dr. Ada"
    ) -> User:
        return await use_cases.register(
            self._identity,
            email=email or new_email(),
            password=password,
            display_name=display_name,
        )

    async def sign_in(self, email: str, password: str = PASSWORD) -> SignedIn:
        tokens = await use_cases.login(self._identity, email=email, password=password)
        return SignedIn(email, tokens, await self.principal(tokens.access_token))

    async def principal(self, access_token: str) -> Principal:
        return await self._verifier.verify(access_token)

    async def clinician(self) -> SignedIn:
        user = await self.register()
        return await self.sign_in(user.email)

    async def admin(self) -> SignedIn:
        await use_cases.ensure_admin(self._identity, email=ADMIN_EMAIL, password=ADMIN_PASSWORD)
        return await self.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
