"""Declarative input validation from the protos' `buf.validate` rules.

protovalidate 2 evaluates the rules natively (Rust, CEL compiled once per message type):
about 2 µs a request where the pure-Python 1.x interpreter took 0.5 ms or more.
"""

from __future__ import annotations

from google.protobuf.message import Message
from protovalidate import Validator, Violation

from medstation_platform import errors


class RequestValidator:
    """Checks a request against its proto rules before any business code sees it."""

    def __init__(self) -> None:
        # The validator compiles and caches the rules of each message type it sees.
        self._validator = Validator()

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
    path = violation.proto.field
    for element in path.elements if path is not None else ():
        name = element.field_name or ""
        subscript = element.subscript
        if subscript is not None and subscript.field == "index":
            name += f"[{subscript.value}]"
        elif subscript is not None:
            name += f"[{subscript.value!r}]"  # a map key
        parts.append(name)
    return ".".join(parts) or "request"
