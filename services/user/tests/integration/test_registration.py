"""Register and Login over gRPC."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest

from devstack.rpc_failures import failure
from medstation.user.v1 import user_service_pb2 as pb
from services.user.tests.integration.user_client import PASSWORD, UserClient, new_email

if TYPE_CHECKING:
    from medstation.user.v1.user_service_pb2_grpc import UserServiceAsyncStub


async def test_register_creates_an_active_clinician_with_a_normalized_email(
    stub: UserServiceAsyncStub,
) -> None:
    email = new_email()

    user = await stub.Register(
        pb.RegisterRequest(email=email.upper(), password=PASSWORD, display_name=" Dr.  Ada ")
    )

    assert (user.email, user.role, user.active) == (email, "clinician", True)
    assert user.display_name == "Dr. Ada"
    assert user.id
    assert user.created_at.ToDatetime() == user.updated_at.ToDatetime()
    assert not user.HasField("password")


@pytest.mark.parametrize(
    ("email", "password", "field"),
    [
        pytest.param("not-an-email", PASSWORD, "email", id="malformed-email"),
        pytest.param(None, "short", "password", id="short-password"),
    ],
)
async def test_register_rejects_bad_input_naming_the_field(
    stub: UserServiceAsyncStub, email: str | None, password: str, field: str
) -> None:
    request = pb.RegisterRequest(
        email=email or new_email(), password=password, display_name="Dr. Ada"
    )

    failed = await failure(stub.Register(request))

    assert failed.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failed.fields == [field]


async def test_register_refuses_an_email_registered_in_another_case(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    existing = await client.register()
    request = pb.RegisterRequest(
        email=existing.email.upper(), password=PASSWORD, display_name="Impostor"
    )

    failed = await failure(stub.Register(request))

    assert (failed.code, failed.reason, failed.domain) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "EMAIL_ALREADY_REGISTERED",
        "medstation.user",
    )
