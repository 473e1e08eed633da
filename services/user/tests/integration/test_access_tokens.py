"""Which access tokens the service accepts, and the JWKS document that verifies them."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devstack.rpc_failures import failure
from medstation.user.v1 import user_service_pb2 as pb
from medstation_platform.auth.keys import CachedJwks, grpc_jwks_fetcher
from medstation_platform.auth.tokens import TokenVerifier
from services.user.tests.integration.user_client import Metadata, Session, UserClient
from user.bootstrap import UserService
from user.domain import User

if TYPE_CHECKING:
    from medstation.user.v1.user_service_pb2_grpc import UserServiceAsyncStub

BadToken = Callable[[Session, UserService], Metadata]


def _claims(session: Session) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(session.access_token, options={"verify_signature": False})
    return claims


def _kid(session: Session) -> str:
    return str(jwt.get_unverified_header(session.access_token)["kid"])


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _missing(session: Session, service: UserService) -> Metadata:
    return ()


def _garbage(session: Session, service: UserService) -> Metadata:
    return (("authorization", "Bearer not-a-jwt"),)


def _forged(session: Session, service: UserService) -> Metadata:
    """Well-formed and claiming the service's key id, but signed by another key."""
    token = jwt.encode(
        _claims(session),
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": _kid(session)},
    )
    return (("authorization", f"Bearer {token}"),)


def _alg_none(session: Session, service: UserService) -> Metadata:
    token = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': _kid(session)})}.{_b64(_claims(session))}."
    return (("authorization", f"Bearer {token}"),)


def _expired(session: Session, service: UserService) -> Metadata:
    """Minted by the service itself with its real key, two hours ago."""
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    user = User(
        id=session.user.id,
        email=session.user.email,
        display_name=session.user.display_name,
        role=session.user.role,
        active=True,
        password_hash="",
        created_at=two_hours_ago,
        updated_at=two_hours_ago,
    )
    token = service.identity.minter.mint(user, _claims(session)["sid"], two_hours_ago)
    return (("authorization", f"Bearer {token}"),)


@pytest.mark.parametrize(
    ("bad_token", "reason"),
    [
        pytest.param(_missing, "TOKEN_MISSING", id="missing"),
        pytest.param(_garbage, "TOKEN_INVALID", id="garbage"),
        pytest.param(_forged, "TOKEN_INVALID", id="forged"),
        pytest.param(_alg_none, "TOKEN_INVALID", id="alg-none"),
        pytest.param(_expired, "TOKEN_EXPIRED", id="expired"),
    ],
)
async def test_calls_without_a_valid_access_token_are_unauthenticated(
    client: UserClient,
    stub: UserServiceAsyncStub,
    service: UserService,
    bad_token: BadToken,
    reason: str,
) -> None:
    session = await client.clinician()

    failed = await failure(stub.GetMe(pb.GetMeRequest(), metadata=bad_token(session, service)))

    assert (failed.code, failed.reason) == (grpc.StatusCode.UNAUTHENTICATED, reason)


async def test_a_non_bearer_authorization_header_is_unauthenticated(
    stub: UserServiceAsyncStub,
) -> None:
    call = stub.GetMe(pb.GetMeRequest(), metadata=(("authorization", "Basic YWRhOnNlY3JldA=="),))

    failed = await failure(call)

    assert (failed.code, failed.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")


async def test_get_jwks_publishes_the_ed25519_key_that_signs_access_tokens(
    client: UserClient, stub: UserServiceAsyncStub
) -> None:
    session = await client.clinician()

    body = await stub.GetJwks(pb.GetJwksRequest())

    assert body.content_type == "application/json"
    keys = {key["kid"]: key for key in json.loads(body.data)["keys"]}
    key = keys[_kid(session)]
    assert (key["kty"], key["crv"], key["alg"]) == ("OKP", "Ed25519", "EdDSA")
    assert "d" not in key
    verified = jwt.decode(
        session.access_token,
        key=jwt.PyJWK(key),
        algorithms=["EdDSA"],
        audience="medstation-api",
        issuer="medstation",
    )
    assert (verified["sub"], verified["role"]) == (session.user.id, "clinician")


async def test_other_services_verify_tokens_with_the_jwks_fetched_over_grpc(
    client: UserClient, channel: grpc.aio.Channel
) -> None:
    """What patient-record, summary and chat do: fetch the keys over gRPC and verify."""
    session = await client.clinician()
    verifier = TokenVerifier(
        CachedJwks(grpc_jwks_fetcher(channel, "/medstation.user.v1.UserService/GetJwks")),
        issuer="medstation", audience="medstation-api",
    )  # fmt: skip

    principal = await verifier.verify(session.access_token)

    assert (principal.user_id, principal.role) == (session.user.id, "clinician")
