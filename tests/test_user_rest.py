"""UserService through the real Envoy gateway, as web and mobile clients call it (REST/JSON)."""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rest_answers import reason
from stack_harness import Account, Accounts, Stack

SIGNING_PASSPHRASE = b"local-development-signing-key-passphrase"


def _violated_fields(response: httpx.Response) -> set[str]:
    fields: set[str] = set()
    for detail in response.json().get("details", []):
        if detail.get("@type", "").endswith("google.rpc.BadRequest"):
            fields |= {violation["field"] for violation in detail["field_violations"]}
    return fields


def test_register_login_and_get_me(api: httpx.Client) -> None:
    local_part = f"New.Person.{secrets.token_hex(4)}"
    created = api.post(
        "/v1/auth/register",
        json={"email": f"{local_part}@E2E.test", "password": "correct horse battery",
              "displayName": "New Person"},
    )  # fmt: skip
    assert created.status_code == 200, created.text
    user = created.json()
    assert user["email"] == f"{local_part.lower()}@e2e.test"
    assert user["role"] == "clinician"
    assert user["active"] is True
    assert "password" not in user
    assert "password_hash" not in user
    login = api.post(
        "/v1/auth/login",
        json={"email": f"{local_part.upper()}@e2e.test", "password": "correct horse battery"},
    )
    assert login.status_code == 200
    tokens = login.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 900
    me = api.get("/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]


def test_duplicate_email_in_any_case_is_409(api: httpx.Client, accounts: Accounts) -> None:
    account = accounts.clinician()
    again = api.post(
        "/v1/auth/register",
        json={"email": account.email.upper(), "password": "another-password", "display_name": "X"},
    )
    assert again.status_code == 409
    assert reason(again) == "EMAIL_ALREADY_REGISTERED"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": "long-enough-pass", "display_name": "A"}, "email"),
        ({"email": "a@b.test", "password": "short", "display_name": "A"}, "password"),
        ({"email": "a@b.test", "password": "long-enough-pass", "display_name": ""},
         "display_name"),
    ],
)  # fmt: skip
def test_bad_registration_is_400_naming_the_field(
    api: httpx.Client, body: dict[str, str], field: str
) -> None:
    response = api.post("/v1/auth/register", json=body)
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == 3
    assert field in _violated_fields(response)
    assert field in error["message"]


def test_malformed_json_is_400(api: httpx.Client) -> None:
    response = api.post(
        "/v1/auth/login", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400


def test_unknown_path_is_404_json(api: httpx.Client, accounts: Accounts) -> None:
    account = accounts.clinician()
    response = api.get("/v1/no-such-thing", headers=account.headers)
    assert response.status_code == 404
    assert response.json()["code"] == 5
    public = api.post("/v1/auth/no-such-thing", json={})
    assert public.status_code == 404
    # Anonymous callers learn nothing about which other paths exist.
    assert api.get("/v1/no-such-thing").status_code == 401


def test_unknown_query_parameter_is_400(api: httpx.Client, accounts: Accounts) -> None:
    admin = accounts.admin()
    response = api.get("/v1/users", params={"colour": "blue"}, headers=admin.headers)
    assert response.status_code == 400


def test_oversized_body_is_413(api: httpx.Client) -> None:
    huge = "x" * (2 * 1024 * 1024)
    response = api.post(
        "/v1/auth/register", json={"email": "a@b.test", "password": huge, "display_name": "A"}
    )
    assert response.status_code == 413


def test_wrong_password_and_unknown_email_look_the_same(
    api: httpx.Client, accounts: Accounts
) -> None:
    account = accounts.clinician()
    wrong = api.post("/v1/auth/login", json={"email": account.email, "password": "wrong-password!"})
    unknown = api.post(
        "/v1/auth/login", json={"email": "nobody@e2e.test", "password": "wrong-password!"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


def _encode(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")


def _signing_key(stack: Stack) -> tuple[str, Ed25519PrivateKey]:
    url = stack.services["user"].env["MEDSTATION_DATABASE_URL"].replace("+psycopg", "")
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT kid, private_key_pem FROM signing_keys ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    key = serialization.load_pem_private_key(bytes(row[1]), password=SIGNING_PASSPHRASE)
    assert isinstance(key, Ed25519PrivateKey)
    return str(row[0]), key


def _claims(account: Account, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = jwt.decode(account.access_token, options={"verify_signature": False})
    claims.update(iat=now, nbf=now, exp=now + 300)
    claims.update(overrides)
    return claims


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda account, kid, key: None, id="missing"),
        pytest.param(lambda account, kid, key: "garbage.token.value", id="garbage"),
        pytest.param(
            lambda account, kid, key: jwt.encode(
                _claims(account), Ed25519PrivateKey.generate(), algorithm="EdDSA",
                headers={"kid": kid},
            ),
            id="forged-signature",
        ),
        pytest.param(
            lambda account, kid, key: (
                f"{_encode({'alg': 'none', 'kid': kid})}.{_encode(_claims(account))}."
            ),
            id="alg-none",
        ),
        pytest.param(
            lambda account, kid, key: jwt.encode(
                _claims(account, exp=int(time.time()) - 600, iat=int(time.time()) - 1200,
                        nbf=int(time.time()) - 1200),
                key, algorithm="EdDSA", headers={"kid": kid},
            ),
            id="expired",
        ),
        pytest.param(
            lambda account, kid, key: jwt.encode(
                _claims(account, aud="someone-else"), key, algorithm="EdDSA", headers={"kid": kid}
            ),
            id="wrong-audience",
        ),
    ],
)  # fmt: skip
def test_untrusted_tokens_are_401_at_the_gateway_and_the_service(
    api: httpx.Client, accounts: Accounts, stack: Stack, make_token: Any
) -> None:
    account = accounts.clinician()
    kid, key = _signing_key(stack)
    token = make_token(account, kid, key)
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = api.get("/v1/users/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == 16


def test_a_token_signed_by_the_real_key_works(
    api: httpx.Client, accounts: Accounts, stack: Stack
) -> None:
    """Guards the test above: the forged tokens fail for their flaw, not for the harness."""
    account = accounts.clinician()
    kid, key = _signing_key(stack)
    token = jwt.encode(_claims(account), key, algorithm="EdDSA", headers={"kid": kid})
    response = api.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_jwks_is_raw_json_with_the_signing_key(api: httpx.Client, accounts: Accounts) -> None:
    account = accounts.clinician()
    response = api.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    keys = response.json()["keys"]
    kid = jwt.get_unverified_header(account.access_token)["kid"]
    key = next(key for key in keys if key["kid"] == kid)
    assert (key["kty"], key["crv"], key["alg"]) == ("OKP", "Ed25519", "EdDSA")
    assert "d" not in key  # never the private part


def test_refresh_rotates_and_reuse_revokes_the_session(
    api: httpx.Client, accounts: Accounts
) -> None:
    account = accounts.clinician()
    first = api.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != account.refresh_token
    me = api.get("/v1/users/me", headers={"Authorization": f"Bearer {rotated['access_token']}"})
    assert me.status_code == 200

    replay = api.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert replay.status_code == 401
    assert reason(replay) == "REFRESH_TOKEN_REUSED"
    # The whole family is gone: the legitimate newer token and its access token too.
    after = api.post("/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert after.status_code == 401
    revoked = api.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {rotated['access_token']}"}
    )
    assert revoked.status_code == 401


def test_logout_ends_the_session(api: httpx.Client, accounts: Accounts) -> None:
    account = accounts.clinician()
    assert api.post("/v1/auth/logout", json={"refresh_token": account.refresh_token}).json() == {}
    assert (
        api.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token}).status_code
        == 401
    )
    assert api.get("/v1/users/me", headers=account.headers).status_code == 401


def test_update_me_with_and_without_mask(api: httpx.Client, accounts: Accounts) -> None:
    account = accounts.clinician()
    renamed = api.patch(
        "/v1/users/me", json={"display_name": "Dr Renamed"}, headers=account.headers
    )
    assert renamed.status_code == 200
    assert renamed.json()["display_name"] == "Dr Renamed"
    masked = api.patch(
        "/v1/users/me", params={"update_mask": "display_name"},
        json={"display_name": "Dr Masked", "role": "admin"}, headers=account.headers,
    )  # fmt: skip
    assert masked.status_code == 200
    assert masked.json()["display_name"] == "Dr Masked"
    assert masked.json()["role"] == "clinician"
    role_change = api.patch(
        "/v1/users/me", params={"update_mask": "role"}, json={"role": "admin"},
        headers=account.headers,
    )  # fmt: skip
    assert role_change.status_code == 400
    assert "update_mask" in _violated_fields(role_change)


def test_password_change_needs_the_current_password(api: httpx.Client, accounts: Accounts) -> None:
    account = accounts.clinician()
    wrong = api.patch(
        "/v1/users/me", json={"password": "brand-new-password", "current_password": "nope"},
        headers=account.headers,
    )  # fmt: skip
    assert wrong.status_code == 400
    assert "current_password" in _violated_fields(wrong)
    changed = api.patch(
        "/v1/users/me",
        json={"password": "brand-new-password", "current_password": account.password},
        headers=account.headers,
    )
    assert changed.status_code == 200
    accounts.login(account.email, "brand-new-password")


def test_clinicians_get_403_on_admin_operations(api: httpx.Client, accounts: Accounts) -> None:
    account = accounts.clinician()
    other = accounts.clinician()
    assert api.get("/v1/users", headers=account.headers).status_code == 403
    set_role = api.post(
        f"/v1/users/{other.id}:setRole", json={"role": "admin"}, headers=account.headers
    )
    assert set_role.status_code == 403
    assert api.post(f"/v1/users/{other.id}:deactivate", headers=account.headers).status_code == 403
    # Another user's record answers as if it did not exist.
    assert api.get(f"/v1/users/{other.id}", headers=account.headers).status_code == 404
    assert api.get(f"/v1/users/{account.id}", headers=account.headers).status_code == 200


def test_admin_lists_users_page_by_page(api: httpx.Client, accounts: Accounts) -> None:
    admin = accounts.admin()
    created = {accounts.clinician().id for _ in range(3)}
    seen: list[str] = []
    token = ""
    for _ in range(100):
        page = api.get(
            "/v1/users", params={"page_size": 2, "page_token": token, "role": "clinician"},
            headers=admin.headers,
        )  # fmt: skip
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["users"]) <= 2
        assert all(user["role"] == "clinician" for user in body["users"])
        seen += [user["id"] for user in body["users"]]
        token = body["next_page_token"]
        if not token:
            break
    assert created <= set(seen)
    assert len(seen) == len(set(seen))
    forged = api.get("/v1/users", params={"page_token": "forged"}, headers=admin.headers)
    assert forged.status_code == 400
    negative = api.get("/v1/users", params={"page_size": -1}, headers=admin.headers)
    assert negative.status_code == 400


def test_admin_sets_role_and_gets_users(api: httpx.Client, accounts: Accounts) -> None:
    admin = accounts.admin()
    account = accounts.clinician()
    promoted = api.post(
        f"/v1/users/{account.id}:setRole", json={"role": "admin"}, headers=admin.headers
    )
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "admin"
    fetched = api.get(f"/v1/users/{account.id}", headers=admin.headers)
    assert fetched.json()["role"] == "admin"
    unknown_role = api.post(
        f"/v1/users/{account.id}:setRole", json={"role": "superuser"}, headers=admin.headers
    )
    assert unknown_role.status_code == 400
    assert "role" in _violated_fields(unknown_role)
    missing = api.get("/v1/users/00000000-0000-4000-8000-000000000000", headers=admin.headers)
    assert missing.status_code == 404
    assert reason(missing) == "USER_NOT_FOUND"


def test_deactivation_stops_the_users_tokens_at_once(api: httpx.Client, accounts: Accounts) -> None:
    admin = accounts.admin()
    account = accounts.clinician()
    assert api.get("/v1/users/me", headers=account.headers).status_code == 200
    deactivated = api.post(f"/v1/users/{account.id}:deactivate", headers=admin.headers)
    assert deactivated.status_code == 200
    assert deactivated.json()["active"] is False
    assert api.get("/v1/users/me", headers=account.headers).status_code == 401
    assert (
        api.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token}).status_code
        == 401
    )
    login = api.post("/v1/auth/login", json={"email": account.email, "password": account.password})
    assert login.status_code == 401


def test_failed_logins_are_throttled(api: httpx.Client, accounts: Accounts) -> None:
    account = accounts.clinician()
    codes = [
        api.post(
            "/v1/auth/login", json={"email": account.email, "password": "wrong-password!"}
        ).status_code
        for _ in range(21)
    ]
    assert codes[:20] == [401] * 20
    assert codes[20] == 429
    blocked = api.post(
        "/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert blocked.status_code == 429
