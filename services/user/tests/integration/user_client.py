"""Calling the user service the way a client does: over gRPC, reading rich error details."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from medstation.user.v1 import user_service_pb2 as pb

if TYPE_CHECKING:
    from medstation.user.v1.user_service_pb2_grpc import UserServiceAsyncStub

PASSWORD = "correct horse battery staple"
Metadata = tuple[tuple[str, str], ...]
_DETAILS_KEY = "grpc-status-details-bin"


def new_email(label: str = "clinician") -> str:
    return f"{label}-{secrets.token_hex(6)}@example.org"


def bearer(access_token: str) -> Metadata:
    return (("authorization", f"Bearer {access_token}"),)


@dataclass(frozen=True)
class Failure:
    """What a failed call tells the client: the code, ErrorInfo, and BadRequest fields."""

    code: grpc.StatusCode
    reason: str
    domain: str
    fields: list[str]


async def failure(call: Awaitable[object]) -> Failure:
    """Await a call that must fail, and decode its status details."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return _failure_of(raised.value)


def _failure_of(error: grpc.aio.AioRpcError) -> Failure:
    status = _rich_status(error)
    info = error_details_pb2.ErrorInfo()
    bad_request = error_details_pb2.BadRequest()
    for detail in status.details:
        if detail.TypeName() == "google.rpc.ErrorInfo":
            detail.Unpack(info)
        elif detail.TypeName() == "google.rpc.BadRequest":
            detail.Unpack(bad_request)
    fields = [violation.field for violation in bad_request.field_violations]
    return Failure(error.code(), info.reason, info.domain, fields)


def _rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    # grpc-stubs types these trailers like the sync API's tuples; they are aio Metadata.
    trailers = cast(grpc.aio.Metadata, error.trailing_metadata())
    [packed] = trailers.get_all(_DETAILS_KEY)
    assert isinstance(packed, bytes)
    status = status_pb2.Status.FromString(packed)
    assert (status.code, status.message) == (error.code().value[0], error.details())
    return status


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
