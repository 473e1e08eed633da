"""Untrustworthy access tokens are refused everywhere: at the gateway (REST and native gRPC)
and by every service on its own port, called directly as an attacker inside the network
would (zero trust: no service relies on the gateway having checked).

Each variant is refused for its own flaw: tokens with that flaw fixed, signed by the same
(real) key, are accepted by every port (see the control test).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.message import Message
from stack_harness import Account, Accounts, Stack

from medstation.chat.v1 import chat_service_pb2 as chat_pb
from medstation.patient.v1 import patient_service_pb2 as patient_pb
from medstation.summary.v1 import summary_service_pb2 as summary_pb
from medstation.user.v1 import user_service_pb2 as user_pb

# The user service's default (MEDSTATION_SIGNING_KEY_PASSPHRASE is not set by the harness).
SIGNING_PASSPHRASE = b"local-development-signing-key-passphrase"
SOME_ID = "00000000-0000-4000-8000-000000000000"
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


@dataclass(frozen=True)
class Probe:
    """One authenticated call of a service, made directly on its port."""

    service: str  # key in stack.services
    method: str
    request: Message
    rest_path: str  # the same call through the gateway


PROBES = (
    Probe("user", "/medstation.user.v1.UserService/GetMe", user_pb.GetMeRequest(), "/v1/users/me"),
    Probe(
        "patient-record",
        "/medstation.patient.v1.PatientRecordService/ListPatients",
        patient_pb.ListPatientsRequest(),
        "/v1/patients",
    ),
    Probe(
        "summary",
        "/medstation.summary.v1.SummaryService/GetSummaryJob",
        summary_pb.GetSummaryJobRequest(id=SOME_ID),
        f"/v1/summary-jobs/{SOME_ID}",
    ),
    Probe(
        "chat", "/medstation.chat.v1.ChatService/ListChats", chat_pb.ListChatsRequest(), "/v1/chats"
    ),
)


@dataclass(frozen=True)
class Keys:
    kid: str
    real: Ed25519PrivateKey  # read from the user database: an attacker never has it
    public_raw: bytes
    public_pem: bytes


@dataclass(frozen=True)
class Victim:
    account: Account
    claims: dict[str, Any]  # of a genuine access token of the account


@pytest.fixture(scope="module")
def keys(stack: Stack) -> Keys:
    url = stack.services["user"].env["MEDSTATION_DATABASE_URL"].replace("+psycopg", "")
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT kid, private_key_pem FROM signing_keys ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    key = serialization.load_pem_private_key(bytes(row[1]), password=SIGNING_PASSPHRASE)
    assert isinstance(key, Ed25519PrivateKey)
    public = key.public_key()
    return Keys(
        kid=str(row[0]),
        real=key,
        public_raw=public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
        public_pem=public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as api:
        yield api


@pytest.fixture(scope="module")
def victim(client: httpx.Client, stack: Stack) -> Victim:
    account = Accounts(client, stack).clinician()
    claims = jwt.decode(account.access_token, options={"verify_signature": False})
    return Victim(account, claims)


def _claims(victim: Victim, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        **victim.claims,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": secrets.token_hex(8),
    }
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def _part(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _signed(claims: dict[str, Any], key: Ed25519PrivateKey, kid: str) -> str:
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})


def _hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """Algorithm confusion: HMAC keyed with the public key, which anyone can read from the
    JWKS (PyJWT refuses to do this; an attacker's own code would not)."""
    signing_input = f"{_part({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{_part(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"


def _other_payload(token: str, claims: dict[str, Any]) -> str:
    """A genuine token's header and signature around claims of the attacker's choosing."""
    header, _, signature = token.split(".")
    return f"{header}.{_part(claims)}.{signature}"


def _valid_between(victim: Victim, keys: Keys, start: int, end: int) -> str:
    """Signed by the real key, valid from `start` to `end` seconds from now (an hour
    beyond every verifier's clock-skew leeway)."""
    now = int(time.time())
    claims = _claims(victim, iat=now + start, nbf=now + start, exp=now + end)
    return _signed(claims, keys.real, keys.kid)


Forge = Callable[[Victim, Keys], "str | None"]
AN_HOUR = 3600

VARIANTS: dict[str, Forge] = {
    "no-token": lambda v, k: None,
    "not-a-jwt": lambda v, k: "not.a.jwt",
    "alg-none": lambda v, k: f"{_part({'alg': 'none', 'kid': k.kid})}.{_part(_claims(v))}.",
    "alg-none-signed-anyway": lambda v, k: (
        f"{_part({'alg': 'none', 'kid': k.kid})}.{_part(_claims(v))}.{_part({'x': 1})}"
    ),
    "hs256-with-the-raw-public-key": lambda v, k: _hs256(_claims(v), k.public_raw, k.kid),
    "hs256-with-the-jwks-x": lambda v, k: _hs256(
        _claims(v), base64.urlsafe_b64encode(k.public_raw).rstrip(b"="), k.kid
    ),
    "hs256-with-the-pem-public-key": lambda v, k: _hs256(_claims(v), k.public_pem, k.kid),
    "bad-signature": lambda v, k: _signed(_claims(v), Ed25519PrivateKey.generate(), k.kid),
    "genuine-signature-edited-claims": lambda v, k: _other_payload(
        v.account.access_token, _claims(v, role="admin")
    ),
    "own-key-unknown-kid": lambda v, k: _signed(
        _claims(v), Ed25519PrivateKey.generate(), "attacker-key"
    ),
    "wrong-issuer": lambda v, k: _signed(_claims(v, iss="https://evil.example"), k.real, k.kid),
    "wrong-audience": lambda v, k: _signed(_claims(v, aud="another-api"), k.real, k.kid),
    "expired": lambda v, k: _valid_between(v, k, -2 * AN_HOUR, -AN_HOUR),
    "not-yet-valid": lambda v, k: _valid_between(v, k, AN_HOUR, 2 * AN_HOUR),
    "no-expiry": lambda v, k: _signed(_claims(v, exp=None), k.real, k.kid),
    "no-session": lambda v, k: _signed(_claims(v, sid=None), k.real, k.kid),
}


@dataclass(frozen=True)
class Answer:
    where: str
    code: str  # gRPC status name, HTTP status for REST


def _rest(client: httpx.Client, probe: Probe, token: str | None) -> Answer:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = client.get(probe.rest_path, headers=headers)
    code = "UNAUTHENTICATED" if response.status_code == 401 else str(response.status_code)
    if response.status_code == 401:
        assert response.json()["code"] == 16, response.text
    return Answer(f"gateway REST {probe.rest_path}", code)


def _grpc(target: str, probe: Probe, token: str | None, where: str) -> Answer:
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            probe.method,
            request_serializer=type(probe.request).SerializeToString,
            response_deserializer=None,
        )
        try:
            call(probe.request, metadata=metadata, timeout=10)
        except grpc.RpcError as error:
            return Answer(where, error.code().name)
    return Answer(where, "OK")


def answers(stack: Stack, client: httpx.Client, token: str | None) -> list[Answer]:
    """What the gateway (REST and gRPC) and each service's own port say to `token`."""
    gateway = stack.gateway_url.removeprefix("http://")
    found: list[Answer] = []
    for probe in PROBES:
        found.append(_rest(client, probe, token))
        found.append(_grpc(gateway, probe, token, f"gateway gRPC {probe.method}"))
        address = stack.services[probe.service].address
        found.append(_grpc(address, probe, token, f"{probe.service} port {probe.method}"))
    return found


@pytest.mark.parametrize("variant", VARIANTS)
def test_forged_or_flawed_tokens_are_refused_everywhere(
    variant: str, stack: Stack, client: httpx.Client, victim: Victim, keys: Keys
) -> None:
    token = VARIANTS[variant](victim, keys)

    accepted = [a for a in answers(stack, client, token) if a.code != "UNAUTHENTICATED"]

    assert accepted == [], f"{variant} was not refused by: {accepted}"


def test_the_same_claims_signed_properly_are_accepted_everywhere(
    stack: Stack, client: httpx.Client, victim: Victim, keys: Keys
) -> None:
    """The control: the harness reaches every port and the real key signs acceptable
    tokens, so each variant above is refused for its flaw alone."""
    for token in (victim.account.access_token, _signed(_claims(victim), keys.real, keys.kid)):
        refused = [a for a in answers(stack, client, token) if a.code == "UNAUTHENTICATED"]
        assert refused == []
        # The summary probe names a job nobody has: NOT_FOUND proves the token passed.
        assert {a.code for a in answers(stack, client, token)} <= {"200", "404", "OK", "NOT_FOUND"}


def test_tokens_of_a_signed_out_session_are_refused_everywhere(
    stack: Stack, client: httpx.Client
) -> None:
    account = Accounts(client, stack).clinician()
    assert all(a.code != "UNAUTHENTICATED" for a in answers(stack, client, account.access_token))

    signed_out = client.post("/v1/auth/logout", json={"refresh_token": account.refresh_token})
    assert signed_out.status_code == 200

    accepted = [
        a for a in answers(stack, client, account.access_token) if a.code != "UNAUTHENTICATED"
    ]
    assert accepted == []


def test_tokens_of_a_deactivated_account_are_refused_everywhere(
    stack: Stack, client: httpx.Client
) -> None:
    accounts = Accounts(client, stack)
    account, admin = accounts.clinician(), accounts.admin()
    assert all(a.code != "UNAUTHENTICATED" for a in answers(stack, client, account.access_token))

    deactivated = client.post(f"/v1/users/{account.id}:deactivate", headers=admin.headers)
    assert deactivated.status_code == 200

    accepted = [
        a for a in answers(stack, client, account.access_token) if a.code != "UNAUTHENTICATED"
    ]
    assert accepted == []
