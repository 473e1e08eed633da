"""Declarative input validation from the protos' `buf.validate` rules."""

from __future__ import annotations

from google.protobuf.message import Message
from protovalidate import Validator
from protovalidate.validator import Violation

from medstation_platform import errors


class RequestValidator:
    """Checks a request against its proto rules before any business code sees it."""

    def __init__(self) -> None:
        # The validator compiles and caches the rules of each message type it sees.
        self._validator = Validator()  # type: ignore[no-untyped-call]

    def check(self, request: object) -> None:
        if not isinstance(request, Message):
            return  # a raw-bytes method (no proto schema) has no rules to check
        violations = self._validator.collect_violations(request)
        if violations:
            field_violations = [_field_violation(violation) for violation in violations]
            summary = "; ".join(f"{v.field}: {v.description}" for v in field_violations)
            raise errors.InvalidArgument(summary, violations=field_violations)


def _field_violation(violation: Violation) -> errors.FieldViolation:
    return errors.FieldViolation(field=_field_path(violation), description=violation.proto.message)


def _field_path(violation: Violation) -> str:
    parts: list[str] = []
    for element in violation.proto.field.elements:
        name = element.field_name
        if element.HasField("index"):
            name += f"[{element.index}]"
        elif element.HasField("string_key"):
            name += f"[{element.string_key!r}]"
        parts.append(name)
    return ".".join(parts) or "request"
