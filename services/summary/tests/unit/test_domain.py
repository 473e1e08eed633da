"""Fingerprints, ages and sealed credentials: the pure rules summaries and jobs rest on."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from services.summary.tests.unit.conftest import chart
from summary.credentials import CredentialSealer
from summary.domain import CredentialsUnreadable, age_on, fingerprint


def test_the_fingerprint_changes_with_any_note_its_order_time_or_writer() -> None:
    record = chart("S: cough", "S: fever")
    base = fingerprint(record, age=64, provider="fake", model="m")
    first, second = record.notes
    variants = [
        replace(record, notes=(second, first)),
        replace(record, notes=(replace(first, content="S: cough!"), second)),
        replace(record, notes=(replace(first, note_time=first.note_time + timedelta(1)), second)),
        replace(record, notes=(first,)),
        replace(record, sex="male"),
        replace(record, date_of_birth=date(1961, 7, 5)),
    ]
    prints = {fingerprint(variant, age=64, provider="fake", model="m") for variant in variants}
    prints |= {
        fingerprint(record, age=65, provider="fake", model="m"),
        fingerprint(record, age=64, provider="other", model="m"),
        fingerprint(record, age=64, provider="fake", model="m2"),
    }
    assert base not in prints
    assert len(prints) == len(variants) + 3
    assert fingerprint(record, age=64, provider="fake", model="m") == base


@pytest.mark.parametrize(
    ("born", "day", "age"),
    [
        (date(1980, 2, 29), date(2025, 2, 28), 44),
        (date(1980, 2, 29), date(2025, 3, 1), 45),
        (date(1961, 7, 4), date(2026, 7, 3), 64),
        (date(1961, 7, 4), date(2026, 7, 4), 65),
        (date(2026, 3, 14), date(2026, 3, 14), 0),
    ],
)
def test_the_age_is_in_whole_years(born: date, day: date, age: int) -> None:
    assert age_on(born, day) == age


def test_sealed_credentials_open_only_for_their_own_job() -> None:
    sealer = CredentialSealer(b"secret")
    sealed = sealer.seal("the-access-token", job_id="job-1")
    assert b"the-access-token" not in sealed
    assert sealer.unseal(sealed, job_id="job-1") == "the-access-token"
    with pytest.raises(CredentialsUnreadable):
        sealer.unseal(sealed, job_id="job-2")
    with pytest.raises(CredentialsUnreadable):
        CredentialSealer(b"rotated").unseal(sealed, job_id="job-1")
