"""Error text keeps what explains the error and loses the values the database quoted."""

from __future__ import annotations

import pytest

from medstation_platform.redaction import redact

SQLALCHEMY_UNIQUE = (
    "(psycopg.errors.UniqueViolation) duplicate key value violates unique constraint "
    '"patients_mrn_key"\nDETAIL:  Key (mrn)=(MRN-Zebulon) already exists.\n'
    "[SQL: INSERT INTO patients (name, mrn) VALUES (%(name)s, %(mrn)s)]\n"
    "[parameters: {'name': 'Zebulon Quartermaine', 'mrn': 'MRN-Zebulon'}]\n"
    "(Background on this error at: https://sqlalche.me/e/20/gkpj)"
)


def test_keys_rows_and_parameters_are_removed_the_explanation_stays() -> None:
    redacted = redact(SQLALCHEMY_UNIQUE)

    assert "Zebulon" not in redacted
    assert 'violates unique constraint "patients_mrn_key"' in redacted
    assert "[SQL: INSERT INTO patients (name, mrn) VALUES (%(name)s, %(mrn)s)]" in redacted
    assert "DETAIL: (redacted)" in redacted
    assert "[parameters: (redacted)]" in redacted


@pytest.mark.parametrize(
    "message",
    [
        'null value in column "sex" violates not-null constraint\n'
        "DETAIL:  Failing row contains (Zebulon Quartermaine, null).",
        'invalid input syntax for type uuid: "Zebulon Quartermaine"',
        'invalid input value for enum sex: "Zebulon Quartermaine"',
    ],
)
def test_values_quoted_by_postgresql_are_removed(message: str) -> None:
    redacted = redact(message)

    assert "Zebulon" not in redacted
    assert "(redacted)" in redacted


def test_text_without_values_is_unchanged() -> None:
    message = 'duplicate key value violates unique constraint "patients_mrn_key"'

    assert redact(message) == message
