"""Models, chats and messages as the business sees them, and the rules on them — no I/O."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Literal

from medstation_llm.registry import PROVIDERS
from medstation_platform import errors

Role = Literal["user", "assistant"]
MAX_MODEL_NAME_LENGTH = 100
MAX_TITLE_LENGTH = 200
MAX_CONTENT_LENGTH = 32_000
MAX_QUERY_LENGTH = 200


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    provider: str
    price_per_million_tokens: float
    enabled: bool
    created_at: datetime
    updated_at: datetime

    def changed(self, now: datetime, **fields: Any) -> Model:
        return replace(self, updated_at=now, **fields)


@dataclass(frozen=True)
class Chat:
    id: str
    owner_id: str
    title: str
    model_id: str
    patient_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Message:
    id: str
    chat_id: str
    owner_id: str
    role: Role
    content: str
    token_count: int
    created_at: datetime
    # The idempotency key of the SendMessage that wrote a user message, if it had one.
    request_id: str | None = None
    # For an assistant message, the user message it answers.
    reply_to: str | None = None


@dataclass(frozen=True)
class Exchange:
    """A user message and the model's reply, stored together or not at all."""

    user_message: Message
    assistant_message: Message


# ---- validation beyond the proto rules; each violation names its field ----


def _control_characters(text: str, *, allowed: str = "") -> bool:
    # PostgreSQL text cannot hold NUL at all, and no other control character belongs in
    # a name or a title; messages keep their line breaks and tabs.
    return any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in text)


def clean_model_name(raw: str, *, field: str = "name") -> str:
    name = raw.strip()
    if not 1 <= len(name) <= MAX_MODEL_NAME_LENGTH:
        raise errors.InvalidArgument.for_field(
            field, f"must be 1 to {MAX_MODEL_NAME_LENGTH} characters, not blank"
        )
    if _control_characters(name):
        raise errors.InvalidArgument.for_field(field, "must not contain control characters")
    return name


def check_provider(raw: str, *, field: str = "provider") -> str:
    if raw not in PROVIDERS:
        raise errors.InvalidArgument.for_field(field, f"must be one of {', '.join(PROVIDERS)}")
    return raw


def check_price(raw: float, *, field: str = "price_per_million_tokens") -> float:
    if not math.isfinite(raw) or raw < 0:
        raise errors.InvalidArgument.for_field(field, "must be a finite number, zero or more")
    return raw


def clean_title(raw: str, *, field: str = "title") -> str:
    title = raw.strip()
    if len(title) > MAX_TITLE_LENGTH:
        raise errors.InvalidArgument.for_field(
            field, f"must be at most {MAX_TITLE_LENGTH} characters"
        )
    if _control_characters(title):
        raise errors.InvalidArgument.for_field(field, "must not contain control characters")
    return title


def check_content(raw: str) -> str:
    if not raw.strip() or len(raw) > MAX_CONTENT_LENGTH:
        raise errors.InvalidArgument.for_field(
            "content", f"must be 1 to {MAX_CONTENT_LENGTH} characters, not blank"
        )
    if _control_characters(raw, allowed="\t\n\r"):
        raise errors.InvalidArgument.for_field(
            "content", "must not contain control characters other than line breaks and tabs"
        )
    return raw


def clean_query(raw: str) -> str:
    query = " ".join(raw.split())
    if not query:
        raise errors.InvalidArgument.for_field("query", "must not be blank")
    if len(query) > MAX_QUERY_LENGTH:
        raise errors.InvalidArgument.for_field(
            "query", f"must be at most {MAX_QUERY_LENGTH} characters"
        )
    if _control_characters(query):
        raise errors.InvalidArgument.for_field("query", "must not contain control characters")
    return query


# ---- what a model is shown ----


def history_window(
    previous: Sequence[Message], *, max_messages: int, max_chars: int
) -> list[Message]:
    """The newest of `previous` (oldest first) that fit both limits, oldest first.

    The budget keeps a long conversation from crowding the new question out of the
    model's context; whole messages only, so no turn is shown cut in half.
    """
    window: list[Message] = []
    used = 0
    for message in reversed(previous[-max_messages:] if max_messages else []):
        used += len(message.content)
        if used > max_chars:
            break
        window.append(message)
    window.reverse()
    # A window opening on a reply answers a question the model cannot see.
    while window and window[0].role == "assistant":
        window.pop(0)
    return window


def age_in_years(born: date, today: date) -> int:
    had_birthday = (today.month, today.day) >= (born.month, born.day)
    return today.year - born.year - (0 if had_birthday else 1)


def notes_within(contents: Sequence[str], max_chars: int) -> list[str]:
    """The notes (newest first) that fit the budget; the newest is cut to fit if needed."""
    kept: list[str] = []
    used = 0
    for content in contents:
        if used + len(content) > max_chars:
            if not kept and max_chars > 0:
                kept.append(content[:max_chars])
            break
        kept.append(content)
        used += len(content)
    return kept


# ---- errors ----


class AdminRequired(errors.PermissionDenied):
    reason = "ADMIN_REQUIRED"
    default_message = "this operation requires the admin role"


class ModelNotFound(errors.NotFound):
    reason = "MODEL_NOT_FOUND"
    default_message = "model not found"


class ModelNameTaken(errors.AlreadyExists):
    reason = "MODEL_ALREADY_EXISTS"
    default_message = "a model with this name already exists"

    def __init__(self, field: str = "name") -> None:
        super().__init__(violations=[errors.FieldViolation(field, "is already used by a model")])


class UnknownModel(errors.InvalidArgument):
    """CreateChat named a model that is not in the catalogue (or not visible as enabled)."""

    reason = "UNKNOWN_MODEL"
    default_message = "model_id: not a model in the catalogue"

    def __init__(self) -> None:
        super().__init__(
            violations=[errors.FieldViolation("model_id", "is not a model in the catalogue")]
        )


class ModelDisabled(errors.FailedPrecondition):
    """The chosen model (CreateChat's `field`), or the chat's model, has been disabled."""

    reason = "MODEL_DISABLED"
    default_message = "the chat's model is disabled; start a new chat with another model"

    def __init__(self, field: str | None = None) -> None:
        if field is None:
            super().__init__()
        else:
            super().__init__(
                f"{field}: the model is disabled",
                violations=[errors.FieldViolation(field, "is disabled")],
            )


class ChatNotFound(errors.NotFound):
    # Also the answer for someone else's chat, admins included, and for a deleted one.
    reason = "CHAT_NOT_FOUND"
    default_message = "chat not found"


class PatientNotFound(errors.NotFound):
    # The patient does not exist or the caller is not on its care team: the same answer.
    reason = "PATIENT_NOT_FOUND"
    default_message = "patient not found"


class PatientRecordsUnavailable(errors.Unavailable):
    reason = "PATIENT_SERVICE_UNAVAILABLE"
    default_message = "patient records are unavailable; retry later"


class IdempotencyKeyReused(errors.FailedPrecondition):
    reason = "IDEMPOTENCY_KEY_REUSED"
    default_message = "this request_id was already used for a different message"

    def __init__(self) -> None:
        super().__init__(
            violations=[errors.FieldViolation("request_id", "was used for a different message")]
        )


class RateLimited(errors.ResourceExhausted):
    reason = "RATE_LIMITED"

    def __init__(self, limit: int, window_seconds: int, retry_after_seconds: int) -> None:
        super().__init__(
            f"too many messages: at most {limit} every {window_seconds} s;"
            f" retry in {retry_after_seconds} s",
            metadata={errors.RETRY_AFTER_METADATA: str(retry_after_seconds)},
        )
