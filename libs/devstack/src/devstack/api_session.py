"""A signed-in caller of the services' public gRPC API, as seeding and benchmarks use it.

Registers its account when missing (ALREADY_EXISTS is the normal case on a re-run), logs
in, and hands out `authorization` metadata whose token is renewed by logging in again
before it expires: a 10 000-patient seed outlives one 15-minute access token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import grpc.aio

from medstation.user.v1 import user_service_pb2 as user_pb
from medstation.user.v1 import user_service_pb2_grpc as user_grpc

Metadata = tuple[tuple[str, str], ...]

# Renew when less than this is left, so no call leaves with a token that expires in flight.
_RENEW_MARGIN_SECONDS = 60.0


@dataclass(frozen=True)
class Credentials:
    email: str
    password: str
    display_name: str


class SignInError(RuntimeError):
    """The account could not be registered or logged in; the message says why."""


class ApiSession:
    """One account's access token, kept fresh, as gRPC call metadata."""

    def __init__(
        self,
        user_channel: grpc.aio.Channel,
        credentials: Credentials,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._users = user_grpc.UserServiceStub(user_channel)
        self._credentials = credentials
        self._timeout = timeout
        self._clock = clock
        self._token = ""
        self._renew_at = float("-inf")
        self._lock = asyncio.Lock()
        self.user_id = ""

    @property
    def email(self) -> str:
        return self._credentials.email

    async def sign_in(self) -> None:
        """Register the account unless it exists, then log in."""
        await self._register()
        await self._login()
        me = await self._users.GetMe(
            user_pb.GetMeRequest(), metadata=await self.metadata(), timeout=self._timeout
        )
        self.user_id = me.id

    async def access_token(self) -> str:
        async with self._lock:
            if self._clock() >= self._renew_at:
                await self._login()
            return self._token

    async def metadata(self) -> Metadata:
        return (("authorization", f"Bearer {await self.access_token()}"),)

    async def _register(self) -> None:
        request = user_pb.RegisterRequest(
            email=self._credentials.email,
            password=self._credentials.password,
            display_name=self._credentials.display_name,
        )
        try:
            await self._users.Register(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise SignInError(
                    f"registering {self._credentials.email} failed: "
                    f"{error.code().name}: {error.details()}"
                ) from error

    async def _login(self) -> None:
        request = user_pb.LoginRequest(
            email=self._credentials.email, password=self._credentials.password
        )
        started = self._clock()
        try:
            response = await self._users.Login(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            raise SignInError(
                f"logging in as {self._credentials.email} failed: {error.code().name}: "
                f"{error.details()} (does the account exist with another password?)"
            ) from error
        self._token = response.access_token
        margin = min(_RENEW_MARGIN_SECONDS, response.expires_in / 2)
        self._renew_at = started + response.expires_in - margin
