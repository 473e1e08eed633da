"""Calling the user service the way a client does: over gRPC, reading rich error details."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from medstation.user.v1 import user_service_pb2 as pb

if TYPE_CHECKING:
    from medstation.user.v1.user_service_pb2_grpc import UserServiceAsyncStub

PASSWORD = "correct horse battery staple"
Metadata = tuple[tuple[str, str], ...]


def new_email(label: str = "clinician") -> str:
    return f"{label}-{secrets.token_hex(6)}@example.org"


def bearer(access_token: str) -> Metadata:
    return (("authorization", f"Bearer {access_token}"),)


@dataclass(frozen=True)
class Session:
    """A signed-in account: who it is and the token pair its login returned."""

    user: pb.User
    access_token: str
    refresh_token: str

    @property
    def metadata(self) -> Metadata:
        return bearer(self.access_token)


class UserClient:
    """Sign-up and sign-in shortcuts over the stub; tests call the stub for what they check."""

    def __init__(self, stub: UserServiceAsyncStub, admin_email: str, admin_password: str) -> None:
        self.stub = stub
        self._admin = (admin_email, admin_password)

    async def register(self, email: str | None = None, display_name: str = "Dr. Ada") -> pb.User:
        request = pb.RegisterRequest(
            email=email or new_email(), password=PASSWORD, display_name=display_name
        )
        return await self.stub.Register(request)

    async def sign_in(self, email: str, password: str = PASSWORD) -> Session:
        tokens = await self.stub.Login(pb.LoginRequest(email=email, password=password))
        me = await self.stub.GetMe(pb.GetMeRequest(), metadata=bearer(tokens.access_token))
        return Session(me, tokens.access_token, tokens.refresh_token)

    async def clinician(self) -> Session:
        return await self.sign_in((await self.register()).email)

    async def admin(self) -> Session:
        return await self.sign_in(*self._admin)
