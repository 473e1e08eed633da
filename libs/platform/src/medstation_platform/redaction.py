"""Strip the values that database errors quote from error text, before it leaves the process.

PostgreSQL and SQLAlchemy put row values in their error messages: `DETAIL:  Key
(mrn)=(A-123) already exists.`, `Failing row contains (...)`, `invalid input syntax for
type uuid: "..."`, and SQLAlchemy's `[parameters: {...}]`. Those values are patient data,
and error text reaches log lines, span statuses and span exception events. What stays is
what explains the error: its class, the constraint, the SQL with its placeholders.
"""

from __future__ import annotations

import re

REDACTED = "(redacted)"

# Each pattern ends at the end of its line: every value-bearing part is on one line
# (SQLAlchemy prints parameters with repr(), which escapes newlines).
_PATTERNS = (
    # psycopg / libpq detail lines: keys, failing rows, referenced values.
    (re.compile(r"(DETAIL:)[^\n]*"), rf"\1 {REDACTED}"),
    # SQLAlchemy's rendering of the bound parameters of the failed statement.
    (re.compile(r"(\[parameters:)[^\n]*"), rf"\1 {REDACTED}]"),
    # "invalid input syntax for type uuid: \"...\"", "invalid input value for enum x: \"...\""
    (re.compile(r"(invalid input (?:syntax|value) for [^:\n]*:)[^\n]*"), rf"\1 {REDACTED}"),
)


def redact(text: str) -> str:
    """`text` with the values database errors quote replaced by "(redacted)"."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
