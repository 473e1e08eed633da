"""Who is calling: the authenticated identity every use case receives explicitly."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from medstation_platform import errors

ADMIN_ROLE = "admin"


@dataclass(frozen=True)
class Principal:
    user_id: str
    role: str
    session_id: str
    # The caller's bearer token, kept so service-to-service calls act on the caller's
    # behalf (care-team rules and the audit trail then see the real person).
    token: str

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN_ROLE


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "medstation_principal", default=None
)


def current_principal() -> Principal | None:
    """The principal of the RPC being served on this task, if it was authenticated."""
    return _current.get()


def require_principal() -> Principal:
    """The authenticated caller of the RPC being served.

    The pipeline authenticates every method not listed as public, so this fails only if
    a method that needs a caller was wrongly made public.
    """
    principal = _current.get()
    if principal is None:
        raise errors.Unauthenticated("authentication required")
    return principal


def set_current_principal(principal: Principal | None) -> contextvars.Token[Principal | None]:
    return _current.set(principal)


def reset_current_principal(token: contextvars.Token[Principal | None]) -> None:
    _current.reset(token)
