"""GetSummary and ListSummaries: a summary is written once per chart and reused until the
chart changes."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import date, timedelta

import pytest

from medstation_platform.auth.principal import Principal
from services.summary.tests.unit.conftest import chart, person
from services.summary.tests.unit.fakes import FakePatients, FakeSummarizer, FixedClock
from summary import use_cases
from summary.domain import PatientHasNoNotes, PatientNotFound
from summary.use_cases import PageRequest, Summaries


async def test_unchanged_notes_reuse_the_stored_summary(
    summaries: Summaries, patients: FakePatients, summarizer: FakeSummarizer, doctor: Principal
) -> None:
    record = chart("S: cough", "S: fever")
    patients.add(record, doctor.user_id)
    first = await use_cases.get_summary(summaries, doctor, record.patient_id)
    again = await use_cases.get_summary(summaries, doctor, record.patient_id)
    assert again == first
    assert summarizer.calls == 1
    assert (first.note_count, first.provider, first.model, first.latency_ms) == (
        2,
        "fake",
        "fake-1",
        42,
    )


async def test_a_new_note_writes_a_new_summary(
    summaries: Summaries, patients: FakePatients, doctor: Principal
) -> None:
    record = chart("S: cough")
    patients.add(record, doctor.user_id)
    first = await use_cases.get_summary(summaries, doctor, record.patient_id)
    newer = chart("A: pneumonia")
    patients.add(replace(record, notes=newer.notes + record.notes), doctor.user_id)
    second = await use_cases.get_summary(summaries, doctor, record.patient_id)
    assert second.id != first.id
    assert second.note_count == 2
    assert "pneumonia" in second.text


async def test_an_edited_or_removed_note_writes_a_new_summary(
    summaries: Summaries, patients: FakePatients, doctor: Principal
) -> None:
    record = chart("S: cough", "S: fever")
    patients.add(record, doctor.user_id)
    seen = {(await use_cases.get_summary(summaries, doctor, record.patient_id)).id}
    edited = replace(record.notes[0], content="S: productive cough")
    patients.add(replace(record, notes=(edited, record.notes[1])), doctor.user_id)
    seen.add((await use_cases.get_summary(summaries, doctor, record.patient_id)).id)
    patients.add(replace(record, notes=record.notes[1:]), doctor.user_id)
    seen.add((await use_cases.get_summary(summaries, doctor, record.patient_id)).id)
    assert len(seen) == 3


async def test_another_model_writes_its_own_summary(
    summaries: Summaries, patients: FakePatients, doctor: Principal
) -> None:
    record = chart("S: cough")
    patients.add(record, doctor.user_id)
    first = await use_cases.get_summary(summaries, doctor, record.patient_id)
    other = replace(summaries, summarizer=FakeSummarizer("fake", "fake-2"))
    second = await use_cases.get_summary(other, doctor, record.patient_id)
    assert (second.model, second.id != first.id) == ("fake-2", True)


async def test_the_age_is_counted_on_the_day_the_summary_is_written(
    summaries: Summaries, patients: FakePatients, clock: FixedClock, doctor: Principal
) -> None:
    record = chart("S: cough", born=date(1961, 7, 4))  # the clock says 2026-03-14
    patients.add(record, doctor.user_id)
    before = await use_cases.get_summary(summaries, doctor, record.patient_id)
    clock.advance(timedelta(days=112))  # 2026-07-04: a birthday
    after = await use_cases.get_summary(summaries, doctor, record.patient_id)
    assert (before.patient_age, after.patient_age) == (64, 65)
    assert after.text.startswith("65-year-old")


async def test_a_patient_without_notes_cannot_be_summarized(
    summaries: Summaries, patients: FakePatients, summarizer: FakeSummarizer, doctor: Principal
) -> None:
    record = chart()
    patients.add(record, doctor.user_id)
    with pytest.raises(PatientHasNoNotes):
        await use_cases.get_summary(summaries, doctor, record.patient_id)
    assert summarizer.calls == 0


async def test_outsiders_see_no_patient_and_no_summaries(
    summaries: Summaries, patients: FakePatients, doctor: Principal, outsider: Principal
) -> None:
    record = chart("S: cough")
    patients.add(record, doctor.user_id)
    await use_cases.get_summary(summaries, doctor, record.patient_id)
    with pytest.raises(PatientNotFound):
        await use_cases.get_summary(summaries, outsider, record.patient_id)
    with pytest.raises(PatientNotFound):
        await use_cases.list_summaries(summaries, outsider, record.patient_id, PageRequest(0, ""))
    admin = person("admin")
    listed = await use_cases.list_summaries(summaries, admin, record.patient_id, PageRequest(0, ""))
    assert len(listed.items) == 1


async def test_concurrent_requests_for_one_chart_call_the_model_once(
    summaries: Summaries, patients: FakePatients, summarizer: FakeSummarizer, doctor: Principal
) -> None:
    record = chart("S: cough")
    patients.add(record, doctor.user_id)
    summarizer.delay_seconds = 0.05
    results = await asyncio.gather(
        *(use_cases.get_summary(summaries, doctor, record.patient_id) for _ in range(5))
    )
    assert len({summary.id for summary in results}) == 1
    assert summarizer.calls == 1


async def test_summaries_are_listed_newest_first_page_by_page(
    summaries: Summaries, patients: FakePatients, clock: FixedClock, doctor: Principal
) -> None:
    record = chart("S: visit 0")
    written = []
    for visit in range(5):
        newer = chart(f"S: visit {visit + 1}")
        record = replace(record, notes=newer.notes + record.notes)
        patients.add(record, doctor.user_id)
        written.append((await use_cases.get_summary(summaries, doctor, record.patient_id)).id)
        clock.advance(timedelta(minutes=1))
    listed, token = [], ""
    while True:
        page = await use_cases.list_summaries(
            summaries, doctor, record.patient_id, PageRequest(2, token)
        )
        assert len(page.items) <= 2
        listed += [summary.id for summary in page.items]
        if not (token := page.next_page_token):
            break
    assert listed == written[::-1]
