"""A configured secret: its value is read on purpose, never shown by accident."""

from __future__ import annotations

from typing import final

MASK = "**********"


@final
class Secret:
    """A string that repr(), str(), f-strings and log lines show as asterisks.

    `get_secret_value()` is the one way to the value (the name pydantic's SecretStr
    used, so reading it stands out in review).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    # Equal secrets make equal (and equally hashed) frozen settings.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return self._value == other._value

    def __hash__(self) -> int:
        return hash(self._value)
