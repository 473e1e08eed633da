"""Login, Refresh and Logout: token pairs, rotation, revocation, throttling."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from devstack.rpc_failures import Failure, failure
from medstation.user.v1 import user_service_pb2 as pb
from services.user.tests.integration.user_client import PASSWORD, UserClient, bearer, new_email

if TYPE_CHECKING:
    from medstation.user.v1.user_service_pb2_grpc import UserServiceAsyncStub

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


async def _refresh(stub: UserServiceAsyncStub, refresh_token: str) -> pb.RefreshResponse:
    return await stub.Refresh(pb.RefreshRequest(refresh_token=refresh_token))


async def _get_me_failure(stub: UserServiceAsyncStub, access_token: str) -> Failure:
    return await failure(stub.GetMe(pb.GetMeRequest(), metadata=bearer(access_token)))


async def test_login_returns_a_bearer_token_pair(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    user = await client.register()

    tokens = await stub.Login(pb.LoginRequest(email=user.email.upper(), password=PASSWORD))

    assert (tokens.token_type, tokens.expires_in) == ("Bearer", 900)
    assert tokens.access_token.count(".") == 2
    me = await stub.GetMe(pb.GetMeRequest(), metadata=bearer(tokens.access_token))
    assert me.id == user.id


async def test_login_answers_unknown_email_and_wrong_password_alike(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    user = await client.register()

    unknown = await failure(stub.Login(pb.LoginRequest(email=new_email(), password=PASSWORD)))
    wrong = await failure(stub.Login(pb.LoginRequest(email=user.email, password="wrong!")))

    assert unknown == wrong
    assert (wrong.code, wrong.reason) == (UNAUTHENTICATED, "INVALID_CREDENTIALS")


async def test_the_21st_failed_login_within_a_minute_is_throttled(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    user = await client.register()
    wrong = pb.LoginRequest(email=user.email, password="wrong password")
    for _ in range(20):
        assert (await failure(stub.Login(wrong))).reason == "INVALID_CREDENTIALS"

    throttled = await failure(stub.Login(wrong))
    right = await failure(stub.Login(pb.LoginRequest(email=user.email, password=PASSWORD)))

    assert (throttled.code, throttled.reason) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "LOGIN_THROTTLED",
    )
    assert right.reason == "LOGIN_THROTTLED"


async def test_refresh_rotates_the_pair_and_the_old_token_stops_working(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    session = await client.clinician()

    renewed = await _refresh(stub, session.refresh_token)
    reused = await failure(_refresh(stub, session.refresh_token))

    assert renewed.refresh_token != session.refresh_token
    assert (renewed.token_type, renewed.expires_in) == ("Bearer", 900)
    assert (reused.code, reused.reason) == (UNAUTHENTICATED, "REFRESH_TOKEN_REUSED")


async def test_refresh_token_reuse_revokes_the_whole_session(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    session = await client.clinician()
    renewed = await _refresh(stub, session.refresh_token)

    await failure(_refresh(stub, session.refresh_token))

    rotated_to = await failure(_refresh(stub, renewed.refresh_token))
    assert (rotated_to.code, rotated_to.reason) == (UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")
    for access_token in (session.access_token, renewed.access_token):
        rejected = await _get_me_failure(stub, access_token)
        assert (rejected.code, rejected.reason) == (UNAUTHENTICATED, "TOKEN_REVOKED")


async def test_refresh_token_reuse_leaves_the_accounts_other_sessions_alone(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    session = await client.clinician()
    other = await client.sign_in(session.user.email)
    await _refresh(stub, session.refresh_token)

    await failure(_refresh(stub, session.refresh_token))

    assert (await stub.GetMe(pb.GetMeRequest(), metadata=other.metadata)).id == other.user.id
    await _refresh(stub, other.refresh_token)


async def test_refresh_with_an_unknown_token_is_unauthenticated(
    stub: UserServiceAsyncStub,
) -> None:
    failed = await failure(_refresh(stub, "never-issued"))

    assert (failed.code, failed.reason) == (UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")


async def test_refresh_without_a_token_names_the_field(stub: UserServiceAsyncStub) -> None:
    failed = await failure(_refresh(stub, ""))

    assert (failed.code, failed.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["refresh_token"])


async def test_logout_ends_the_session_at_once(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    session = await client.clinician()

    await stub.Logout(pb.LogoutRequest(refresh_token=session.refresh_token))

    refreshed = await failure(_refresh(stub, session.refresh_token))
    assert (refreshed.code, refreshed.reason) == (UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")
    rejected = await _get_me_failure(stub, session.access_token)
    assert (rejected.code, rejected.reason) == (UNAUTHENTICATED, "TOKEN_REVOKED")


async def test_logout_with_an_unknown_token_succeeds(stub: UserServiceAsyncStub) -> None:
    await stub.Logout(pb.LogoutRequest(refresh_token="never-issued"))
