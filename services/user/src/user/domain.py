"""Users, sessions and signing keys as the business sees them — no I/O, no gRPC."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from medstation_platform import errors

ADMIN = "admin"
CLINICIAN = "clinician"
ROLES = frozenset({ADMIN, CLINICIAN})
_EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class User:
    id: str
    email: str
    display_name: str
    role: str
    active: bool
    password_hash: str
    created_at: datetime
    updated_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    def changed(self, now: datetime, **fields: Any) -> User:
        return replace(self, updated_at=now, **fields)


@dataclass(frozen=True)
class RefreshToken:
    """One link in a session's rotation chain; the family id is the session id.

    `expires_at` is this link's end: its idle timeout, capped by `session_expires_at`,
    the session's absolute end, which every link of the family carries unchanged.
    """

    id: str
    family_id: str
    user_id: str
    token_hash: bytes
    created_at: datetime
    expires_at: datetime
    session_expires_at: datetime
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class SessionPolicy:
    """How long a session lives: `idle` without a refresh, `absolute` after sign-in."""

    idle: timedelta
    absolute: timedelta

    def session_end(self, signed_in_at: datetime) -> datetime:
        return signed_in_at + self.absolute

    def link_end(self, now: datetime, session_end: datetime) -> datetime:
        """When a refresh token issued `now` stops working."""
        return min(now + self.idle, session_end)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key_pem: bytes
    public_jwk: dict[str, str]
    created_at: datetime


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int


def normalize_email(raw: str) -> str:
    """One spelling per mailbox: case-insensitive, compatibility-normalized, trimmed."""
    email = unicodedata.normalize("NFKC", raw).strip().lower()
    if not _EMAIL_SHAPE.match(email) or len(email) > 254:
        raise errors.InvalidArgument.for_field("email", "must be a valid email address")
    return email


def clean_display_name(raw: str) -> str:
    name = " ".join(raw.split())
    if not 1 <= len(name) <= 100:
        raise errors.InvalidArgument.for_field("display_name", "must be 1 to 100 characters")
    # PostgreSQL text cannot hold NUL (it would fail as a 500), and no other control
    # character belongs in a name shown to other people.
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise errors.InvalidArgument.for_field(
            "display_name", "must not contain control characters"
        )
    return name


class UserNotFound(errors.NotFound):
    reason = "USER_NOT_FOUND"
    default_message = "user not found"


class EmailAlreadyRegistered(errors.AlreadyExists):
    reason = "EMAIL_ALREADY_REGISTERED"
    default_message = "an account with this email already exists"


class InvalidCredentials(errors.Unauthenticated):
    # One error for unknown email, wrong password and deactivated account, so the
    # answer never tells an attacker which emails have accounts.
    reason = "INVALID_CREDENTIALS"
    default_message = "email or password is incorrect"


class LoginThrottled(errors.ResourceExhausted):
    reason = "LOGIN_THROTTLED"
    default_message = "too many failed sign-in attempts; try again in a minute"


class RefreshTokenInvalid(errors.Unauthenticated):
    reason = "REFRESH_TOKEN_INVALID"
    default_message = "the refresh token is invalid, expired or revoked"


class RefreshTokenReused(errors.Unauthenticated):
    reason = "REFRESH_TOKEN_REUSED"
    default_message = "this refresh token was already used; the session has been revoked"


class AccountInactive(errors.Unauthenticated):
    reason = "ACCOUNT_INACTIVE"
    default_message = "this account is deactivated"


class AdminRequired(errors.PermissionDenied):
    reason = "ADMIN_REQUIRED"
    default_message = "this operation requires the admin role"


class OwnAccountProtected(errors.FailedPrecondition):
    reason = "OWN_ACCOUNT_PROTECTED"
    default_message = "admins cannot demote or deactivate their own account"


class WrongCurrentPassword(errors.InvalidArgument):
    reason = "WRONG_CURRENT_PASSWORD"

    def __init__(self) -> None:
        super().__init__(
            "current_password: does not match",
            violations=[errors.FieldViolation("current_password", "does not match")],
        )
