"""Domain errors: what went wrong, in business terms, with a stable machine-readable reason.

Business code raises these; exactly one place (`medstation_platform.rpc.status`) turns
them into gRPC status codes with `google.rpc.ErrorInfo` / `BadRequest` details. Business
code therefore never imports grpc.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class FieldViolation:
    """One offending input field, named as the client spelled it (snake_case path)."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every error that is part of the API contract.

    Subclasses set `reason` (UPPER_SNAKE, stable forever: clients switch on it) and
    inherit their status category from one of the classes below.
    """

    reason: ClassVar[str] = "UNSPECIFIED"
    default_message: ClassVar[str] = "request failed"

    def __init__(
        self,
        message: str | None = None,
        *,
        violations: Iterable[FieldViolation] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.violations = tuple(violations)
        self.metadata = dict(metadata or {})
        super().__init__(self.message)


class InvalidArgument(DomainError):
    reason = "INVALID_ARGUMENT"
    default_message = "invalid argument"

    @classmethod
    def for_field(cls, field: str, description: str) -> InvalidArgument:
        """The common case: one named field is wrong."""
        return cls(f"{field}: {description}", violations=[FieldViolation(field, description)])


class FailedPrecondition(DomainError):
    reason = "FAILED_PRECONDITION"
    default_message = "the system is not in a state required for this operation"


class Unauthenticated(DomainError):
    reason = "UNAUTHENTICATED"
    default_message = "authentication required"


class PermissionDenied(DomainError):
    reason = "PERMISSION_DENIED"
    default_message = "permission denied"


class NotFound(DomainError):
    reason = "NOT_FOUND"
    default_message = "not found"


class AlreadyExists(DomainError):
    reason = "ALREADY_EXISTS"
    default_message = "already exists"


class Aborted(DomainError):
    reason = "ABORTED"
    default_message = "the operation was aborted by a concurrent change; retry"


# An error's metadata key for "retry after this many seconds": sent to clients as the
# `retry-after` header too (gRPC trailing metadata, which the gateway passes on).
RETRY_AFTER_METADATA = "retry_after_seconds"


class ResourceExhausted(DomainError):
    reason = "RESOURCE_EXHAUSTED"
    default_message = "too many requests"


class Unavailable(DomainError):
    reason = "UNAVAILABLE"
    default_message = "a dependency is unavailable; retry later"


class DeadlineExceeded(DomainError):
    reason = "DEADLINE_EXCEEDED"
    default_message = "the operation did not finish in time"


class InvalidPageToken(InvalidArgument):
    reason = "INVALID_PAGE_TOKEN"

    def __init__(self) -> None:
        super().__init__(
            "page_token: not a token issued for this list",
            violations=[FieldViolation("page_token", "not a token issued for this list")],
        )
