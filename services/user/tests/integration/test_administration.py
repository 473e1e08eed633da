"""ListUsers, GetUser, SetRole and Deactivate: who may see and manage which accounts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from devstack.rpc_failures import failure
from medstation.user.v1 import user_service_pb2 as pb
from services.user.tests.integration.user_client import Session, UserClient

if TYPE_CHECKING:
    from medstation.user.v1.user_service_pb2_grpc import UserServiceAsyncStub

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


async def _list_all(
    stub: UserServiceAsyncStub, admin: Session, *, page_size: int, role: str = ""
) -> list[pb.User]:
    users: list[pb.User] = []
    request = pb.ListUsersRequest(page_size=page_size, role=role)
    while True:
        page = await stub.ListUsers(request, metadata=admin.metadata)
        assert len(page.users) <= page_size
        users += page.users
        if not page.next_page_token:
            return users
        request.page_token = page.next_page_token


def _list_order(user: pb.User) -> tuple[object, str]:
    return user.created_at.ToDatetime(), user.id


async def test_list_users_pages_through_every_account_exactly_once_in_order(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    admin = await client.admin()
    registered = [await client.register() for _ in range(5)]

    users = await _list_all(stub, admin, page_size=2)

    ids = [user.id for user in users]
    assert len(ids) == len(set(ids))
    assert users == sorted(users, key=_list_order)
    mine = [user_id for user_id in ids if user_id in {user.id for user in registered}]
    assert mine == [user.id for user in registered]


async def test_list_users_filters_by_role(client: UserClient, stub: UserServiceAsyncStub) -> None:
    admin = await client.admin()
    clinician = await client.register()

    admins = await _list_all(stub, admin, page_size=100, role="admin")

    assert {user.role for user in admins} == {"admin"}
    assert admin.user.id in {user.id for user in admins}
    assert clinician.id not in {user.id for user in admins}


async def test_list_users_rejects_an_unknown_role_naming_it(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    admin = await client.admin()

    call = stub.ListUsers(pb.ListUsersRequest(role="superuser"), metadata=admin.metadata)
    failed = await failure(call)

    assert (failed.code, failed.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["role"])


async def test_list_users_rejects_a_tampered_page_token(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    admin = await client.admin()
    await client.register()
    first = await stub.ListUsers(pb.ListUsersRequest(page_size=1), metadata=admin.metadata)
    token = first.next_page_token
    tampered = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]

    call = stub.ListUsers(
        pb.ListUsersRequest(page_size=1, page_token=tampered), metadata=admin.metadata
    )
    failed = await failure(call)

    assert (failed.code, failed.reason, failed.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_PAGE_TOKEN",
        ["page_token"],
    )


async def test_clinicians_may_not_list_users(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    clinician = await client.clinician()

    failed = await failure(stub.ListUsers(pb.ListUsersRequest(), metadata=clinician.metadata))

    assert (failed.code, failed.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ADMIN_REQUIRED")


async def test_get_user_shows_clinicians_only_their_own_account(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    clinician = await client.clinician()
    colleague = await client.register()

    own = await stub.GetUser(pb.GetUserRequest(id=clinician.user.id), metadata=clinician.metadata)
    other = await failure(
        stub.GetUser(pb.GetUserRequest(id=colleague.id), metadata=clinician.metadata)
    )

    assert own == clinician.user
    assert (other.code, other.reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")


async def test_admins_get_any_account(client: UserClient, stub: UserServiceAsyncStub) -> None:
    admin = await client.admin()
    clinician = await client.register()

    user = await stub.GetUser(pb.GetUserRequest(id=clinician.id), metadata=admin.metadata)
    missing = await failure(stub.GetUser(pb.GetUserRequest(id=UNKNOWN_ID), metadata=admin.metadata))

    assert user == clinician
    assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")


async def test_get_user_rejects_an_id_that_is_not_a_uuid(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    admin = await client.admin()

    failed = await failure(stub.GetUser(pb.GetUserRequest(id="42"), metadata=admin.metadata))

    assert (failed.code, failed.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["id"])


async def test_admin_promotes_a_clinician_whose_old_token_stops_working(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    admin = await client.admin()
    clinician = await client.clinician()

    promoted = await stub.SetRole(
        pb.SetRoleRequest(id=clinician.user.id, role="admin"), metadata=admin.metadata
    )

    assert promoted.role == "admin"
    stale = await failure(stub.GetMe(pb.GetMeRequest(), metadata=clinician.metadata))
    assert (stale.code, stale.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")


async def test_clinicians_may_not_set_roles(client: UserClient, stub: UserServiceAsyncStub) -> None:
    clinician = await client.clinician()
    request = pb.SetRoleRequest(id=clinician.user.id, role="admin")

    failed = await failure(stub.SetRole(request, metadata=clinician.metadata))

    assert (failed.code, failed.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ADMIN_REQUIRED")


async def test_admins_cannot_change_their_own_role(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    admin = await client.admin()
    request = pb.SetRoleRequest(id=admin.user.id, role="clinician")

    failed = await failure(stub.SetRole(request, metadata=admin.metadata))

    assert (failed.code, failed.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "OWN_ACCOUNT_PROTECTED",
    )


async def test_set_role_rejects_an_unknown_role_naming_it(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    admin = await client.admin()
    clinician = await client.register()
    request = pb.SetRoleRequest(id=clinician.id, role="superuser")

    failed = await failure(stub.SetRole(request, metadata=admin.metadata))

    assert (failed.code, failed.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["role"])


async def test_deactivation_locks_the_user_out_at_once(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    admin = await client.admin()
    clinician = await client.clinician()

    deactivated = await stub.Deactivate(
        pb.DeactivateRequest(id=clinician.user.id), metadata=admin.metadata
    )

    assert not deactivated.active
    me = await failure(stub.GetMe(pb.GetMeRequest(), metadata=clinician.metadata))
    assert (me.code, me.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")
    refresh = await failure(stub.Refresh(pb.RefreshRequest(refresh_token=clinician.refresh_token)))
    assert refresh.reason == "REFRESH_TOKEN_INVALID"
    login = await failure(client.sign_in(clinician.user.email))
    assert login.reason == "INVALID_CREDENTIALS"


async def test_clinicians_may_not_deactivate_accounts(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    clinician = await client.clinician()
    colleague = await client.register()

    failed = await failure(
        stub.Deactivate(pb.DeactivateRequest(id=colleague.id), metadata=clinician.metadata)
    )

    assert (failed.code, failed.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ADMIN_REQUIRED")
