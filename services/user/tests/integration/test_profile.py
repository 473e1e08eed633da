"""GetMe and UpdateMe: the caller's own account, with and without an update mask."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from devstack.rpc_failures import failure
from medstation.user.v1 import user_service_pb2 as pb
from services.user.tests.integration.user_client import PASSWORD, Session, UserClient
from user.bootstrap import UserService

if TYPE_CHECKING:
    from medstation.user.v1.user_service_pb2_grpc import UserServiceAsyncStub

NEW_PASSWORD = "a brand new passphrase"


async def _update_me(
    stub: UserServiceAsyncStub, session: Session, user: pb.User, *paths: str
) -> pb.User:
    request = pb.UpdateMeRequest(user=user, update_mask=FieldMask(paths=list(paths)))
    return await stub.UpdateMe(request, metadata=session.metadata)


async def test_get_me_returns_the_callers_account(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    registered = await client.register(display_name="Dr. Grace")
    session = await client.sign_in(registered.email)

    me = await stub.GetMe(pb.GetMeRequest(), metadata=session.metadata)

    assert me == registered


async def test_concurrent_callers_share_reads_and_each_gets_their_own_account(
    client: UserClient, stub: UserServiceAsyncStub, service: UserService
) -> None:
    sessions = [await client.clinician() for _ in range(4)]
    expected = [session.user.id for session in sessions] * 10

    def batches() -> float:
        labels = {"name": "account_reads"}
        return service.registry.get_sample_value("group_commit_batch_items_count", labels) or 0

    before = batches()
    answers = await asyncio.gather(
        *(stub.GetMe(pb.GetMeRequest(), metadata=sessions[i % 4].metadata) for i in range(40))
    )

    assert [me.id for me in answers] == expected
    assert 1 <= batches() - before < 40  # one statement served several callers


async def test_update_me_with_a_mask_changes_only_the_masked_fields(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    session = await client.clinician()
    body = pb.User(display_name="Dr. Hopper", password=NEW_PASSWORD, current_password=PASSWORD)

    updated = await _update_me(stub, session, body, "display_name")

    assert updated.display_name == "Dr. Hopper"
    assert updated.updated_at.ToDatetime() > session.user.updated_at.ToDatetime()
    await client.sign_in(session.user.email, PASSWORD)  # the password stayed


async def test_update_me_without_a_mask_changes_the_fields_present(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    session = await client.clinician()

    updated = await _update_me(stub, session, pb.User(display_name="Dr. Hopper"))

    assert updated.display_name == "Dr. Hopper"
    assert (await stub.GetMe(pb.GetMeRequest(), metadata=session.metadata)) == updated


async def test_update_me_ignores_role_in_the_body_without_a_mask(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    session = await client.clinician()

    updated = await _update_me(stub, session, pb.User(display_name="Dr. Root", role="admin"))

    assert (updated.display_name, updated.role) == ("Dr. Root", "clinician")


async def test_update_me_refuses_role_in_the_mask_naming_update_mask(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    session = await client.clinician()

    failed = await failure(_update_me(stub, session, pb.User(role="admin"), "role"))

    assert (failed.code, failed.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["update_mask"])
    me = await stub.GetMe(pb.GetMeRequest(), metadata=session.metadata)
    assert me.role == "clinician"


async def test_update_me_changes_the_password_given_the_current_one(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    session = await client.clinician()
    body = pb.User(password=NEW_PASSWORD, current_password=PASSWORD)

    await _update_me(stub, session, body, "password")

    await client.sign_in(session.user.email, NEW_PASSWORD)
    old = await failure(stub.Login(pb.LoginRequest(email=session.user.email, password=PASSWORD)))
    assert old.reason == "INVALID_CREDENTIALS"


async def test_update_me_refuses_a_password_change_with_a_wrong_current_password(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    session = await client.clinician()
    body = pb.User(password=NEW_PASSWORD, current_password="not my password")

    failed = await failure(_update_me(stub, session, body, "password"))

    assert (failed.code, failed.reason, failed.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "WRONG_CURRENT_PASSWORD",
        ["current_password"],
    )


async def test_update_me_refuses_a_short_new_password_naming_it(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    session = await client.clinician()
    body = pb.User(password="short", current_password=PASSWORD)

    failed = await failure(_update_me(stub, session, body, "password"))

    assert (failed.code, failed.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["user.password"])


async def test_a_password_change_signs_out_the_other_sessions_only(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    current = await client.clinician()
    other = await client.sign_in(current.user.email)
    body = pb.User(password=NEW_PASSWORD, current_password=PASSWORD)

    await _update_me(stub, current, body, "password")

    revoked = await failure(stub.GetMe(pb.GetMeRequest(), metadata=other.metadata))
    assert revoked.reason == "TOKEN_REVOKED"
    await stub.GetMe(pb.GetMeRequest(), metadata=current.metadata)
    await stub.Refresh(pb.RefreshRequest(refresh_token=current.refresh_token))


async def test_a_display_name_with_a_nul_byte_is_a_400_not_a_database_error(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    session = await client.clinician()

    failed = await failure(_update_me(stub, session, pb.User(display_name="Dr.\x00Who")))

    assert (failed.code, failed.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["display_name"])


async def test_an_id_that_is_no_uuid_is_no_account_and_fails_no_other_read(
    client: UserClient, service: UserService
) -> None:
    session = await client.clinician()

    missing, found = await asyncio.gather(
        service.accounts.get("not-a-uuid"), service.accounts.get(session.user.id)
    )

    assert missing is None
    assert found is not None
    assert found.id == session.user.id
