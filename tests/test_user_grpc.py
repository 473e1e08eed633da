"""UserService over gRPC: grpcurl against the service, and gRPC clients through the gateway."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2
from stack_harness import Stack

from medstation.user.v1 import user_service_pb2 as pb
from medstation.user.v1 import user_service_pb2_grpc as pb_grpc

GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
SERVICE = "medstation.user.v1.UserService"


def _grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # the pinned grpcurl binary from the venv
        [GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_grpcurl_lists_services_by_reflection(stack: Stack) -> None:
    listed = _grpcurl(stack.user_grpc, "list")
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) >= {SERVICE, "grpc.health.v1.Health"}


def test_grpcurl_describes_the_service(stack: Stack) -> None:
    described = _grpcurl(stack.user_grpc, "describe", SERVICE)
    assert described.returncode == 0, described.stderr
    assert "rpc GetMe" in described.stdout
    assert "rpc Register" in described.stdout


def test_grpcurl_calls_register_login_and_get_me(stack: Stack) -> None:
    email = f"grpcurl-{secrets.token_hex(4)}@e2e.test"
    registered = _grpcurl(
        "-d", json.dumps({"email": email, "password": "grpcurl-password", "display_name": "G"}),
        stack.user_grpc, f"{SERVICE}/Register",
    )  # fmt: skip
    assert registered.returncode == 0, registered.stderr
    login = _grpcurl(
        "-d", json.dumps({"email": email, "password": "grpcurl-password"}),
        stack.user_grpc, f"{SERVICE}/Login",
    )  # fmt: skip
    token = json.loads(login.stdout)["access_token"]
    me = _grpcurl("-H", f"authorization: Bearer {token}", stack.user_grpc, f"{SERVICE}/GetMe")
    assert me.returncode == 0, me.stderr
    assert json.loads(me.stdout)["email"] == email
    # grpcurl exits 64 + the status code: UNAUTHENTICATED (16) without a token.
    assert _grpcurl(stack.user_grpc, f"{SERVICE}/GetMe").returncode == 64 + 16


@pytest.fixture
def gateway_stub(stack: Stack) -> Iterator[pb_grpc.UserServiceStub]:
    address = stack.gateway_url.removeprefix("http://")
    with grpc.insecure_channel(address) as channel:
        yield pb_grpc.UserServiceStub(channel)


def _bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def test_every_rpc_works_over_grpc_through_the_gateway(
    gateway_stub: pb_grpc.UserServiceStub, stack: Stack
) -> None:
    stub = gateway_stub
    email = f"grpc-{secrets.token_hex(4)}@e2e.test"
    user = stub.Register(
        pb.RegisterRequest(email=email, password="grpc-password-1", display_name="G"), timeout=10
    )
    tokens = stub.Login(pb.LoginRequest(email=email, password="grpc-password-1"), timeout=10)
    me = stub.GetMe(pb.GetMeRequest(), metadata=_bearer(tokens.access_token), timeout=10)
    assert me.id == user.id
    updated = stub.UpdateMe(
        pb.UpdateMeRequest(
            user=pb.User(display_name="Renamed"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        ),
        metadata=_bearer(tokens.access_token), timeout=10,
    )  # fmt: skip
    assert updated.display_name == "Renamed"
    assert (
        stub.GetUser(
            pb.GetUserRequest(id=user.id), metadata=_bearer(tokens.access_token), timeout=10
        ).email
        == email
    )
    refreshed = stub.Refresh(pb.RefreshRequest(refresh_token=tokens.refresh_token), timeout=10)
    jwks = stub.GetJwks(pb.GetJwksRequest(), timeout=10)
    assert json.loads(jwks.data)["keys"]

    admin = stub.Login(
        pb.LoginRequest(email=stack.admin_email, password=stack.admin_password), timeout=10
    )
    listed = stub.ListUsers(
        pb.ListUsersRequest(page_size=100), metadata=_bearer(admin.access_token), timeout=10
    )
    assert listed.users
    promoted = stub.SetRole(
        pb.SetRoleRequest(id=user.id, role="admin"), metadata=_bearer(admin.access_token),
        timeout=10,
    )  # fmt: skip
    assert promoted.role == "admin"
    deactivated = stub.Deactivate(
        pb.DeactivateRequest(id=user.id), metadata=_bearer(admin.access_token), timeout=10
    )
    assert not deactivated.active
    stub.Logout(pb.LogoutRequest(refresh_token=refreshed.refresh_token), timeout=10)
    with pytest.raises(grpc.RpcError) as denied:
        stub.GetMe(pb.GetMeRequest(), metadata=_bearer(refreshed.access_token), timeout=10)
    assert denied.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_grpc_through_the_gateway_requires_a_token(
    gateway_stub: pb_grpc.UserServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as denied:
        gateway_stub.GetMe(pb.GetMeRequest(), timeout=10)
    assert denied.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_reflection_is_not_exposed_through_the_gateway(stack: Stack) -> None:
    listed = _grpcurl(stack.gateway_url.removeprefix("http://"), "list")
    assert listed.returncode != 0
    assert SERVICE not in listed.stdout
