from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from devstack.demo_people import age_on, patient_spec
from devstack.soap_notes import NOTES_UNTIL, notes_for
from libs.llm.tests.conftest import chart_of
from medstation_llm.offline_summary import OfflineSummarizer, summarize_chart
from medstation_llm.registry import OFFLINE, OFFLINE_MODEL
from medstation_llm.token_estimate import estimate_tokens
from medstation_llm.types import ChartNote, PatientChart


async def test_pneumonia_summary_has_the_diagnosis_medication_age_and_dates(
    pneumonia_chart: PatientChart,
) -> None:
    summary = await OfflineSummarizer().summarize(pneumonia_chart, timeout_seconds=5)

    text = summary.text
    assert text.splitlines()[0].startswith("67-year-old female; 2 notes, 2024-11-05 to 2024-11-12")
    assert "Community-acquired pneumonia, improving (2024-11-12; first noted 2024-11-05)" in text
    assert "2024-11-05: Amoxicillin 1 g TID x 5 days" in text
    assert "Allergies: penicillin (rash) (noted 2024-11-05)." in text
    assert "Latest objective findings (2024-11-12):" in text
    assert "- 2024-11-12 — Community-acquired pneumonia, improving" in text
    assert "- 2024-11-05 — Community-acquired pneumonia, right lower lobe" in text
    assert (summary.provider, summary.model) == (OFFLINE, OFFLINE_MODEL)


async def test_summary_reports_estimated_tokens(pneumonia_chart: PatientChart) -> None:
    summary = await OfflineSummarizer().summarize(pneumonia_chart, timeout_seconds=5)

    notes = [note.content for note in pneumonia_chart.notes]
    assert summary.input_tokens == estimate_tokens(notes)
    assert summary.output_tokens == estimate_tokens(summary.text)
    assert summary.latency_ms >= 0


def test_problems_are_deduplicated_newest_first(pneumonia_chart: PatientChart) -> None:
    text = summarize_chart(pneumonia_chart)

    problems = text.split("Active problems / assessments (most recent first):\n")[1]
    bullets = problems.split("\n\n")[0].splitlines()
    assert bullets == [
        "- Community-acquired pneumonia, improving (2024-11-12; first noted 2024-11-05)",
        "- Essential hypertension (I10), well controlled (2024-11-12)",
    ]


def test_older_follow_up_instructions_are_dropped(pneumonia_chart: PatientChart) -> None:
    text = summarize_chart(pneumonia_chart)

    assert "repeat chest X-ray in 6 weeks" in text
    assert "Review in 1 week" not in text


def test_spelled_out_headers_give_the_same_sections() -> None:
    chart = chart_of(
        (
            datetime(2023, 5, 4, 9, tzinfo=UTC),
            "SUBJECTIVE:\nBurning on urination.\nOBJECTIVE:\nUrine dipstick: nitrites +.\n"
            "ASSESSMENT:\nAcute cystitis (N30.00)\nPLAN:\nNitrofurantoin 100 mg twice daily.",
        ),
        age=34,
    )

    text = summarize_chart(chart)

    assert text.startswith("34-year-old female; 1 note, 2023-05-04")
    assert "- Acute cystitis (N30.00) (2023-05-04)" in text
    assert "- 2023-05-04: Nitrofurantoin 100 mg twice daily." in text
    assert "Latest objective findings (2023-05-04):\n- Urine dipstick: nitrites +." in text


def test_notes_without_headers_still_give_a_useful_summary() -> None:
    chart = chart_of(
        (
            datetime(2022, 1, 10, 9, tzinfo=UTC),
            "Seen for wheeze after a cold.\nBP 118/76, SpO2 96 %.\nDiagnosis: asthma "
            "exacerbation\nStart prednisolone 40 mg daily for 5 days.",
        ),
        age=1,
        sex="male",
    )

    text = summarize_chart(chart)

    assert text.startswith("20-month-old male")
    assert "- asthma exacerbation (2022-01-10)" in text
    assert "2022-01-10: Start prednisolone 40 mg daily for 5 days." in text
    assert "- BP 118/76, SpO2 96 %." in text
    assert "- 2022-01-10 — asthma exacerbation" in text


def test_summary_of_many_long_notes_is_bounded_and_shorter() -> None:
    start = datetime(2020, 1, 1, 9, tzinfo=UTC)
    notes = [
        (
            start + timedelta(days=30 * number),
            f"S: visit {number}. "
            + "Patient reports a long story of symptoms. " * 40
            + f"\nO: BP 12{number % 10}/80\nA: Problem number {number}\n"
            + "\n".join(f"P: step {number}.{step} of the plan" for step in range(6)),
        )
        for number in range(30)
    ]
    chart = chart_of(*notes, sex="unknown")

    text = summarize_chart(chart)

    assert len(text) < sum(len(content) for _, content in notes) / 10
    assert "- (22 earlier notes not shown)" in text
    assert "- 2022-05-20 — Problem number 29" in text
    assert "patient (sex: unknown)" in text


def test_summary_is_deterministic(pneumonia_chart: PatientChart) -> None:
    assert summarize_chart(pneumonia_chart) == summarize_chart(pneumonia_chart)


@pytest.mark.parametrize("index", range(12))
def test_seeded_demo_notes_parse_into_every_section(index: int) -> None:
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, "medstation-llm-tests")
    patient = patient_spec(namespace, index, "T")
    seeded = notes_for(namespace, patient, NOTES_UNTIL)
    chart = PatientChart(
        age_years=age_on(patient.date_of_birth, NOTES_UNTIL.date()),
        sex=patient.sex,
        date_of_birth=patient.date_of_birth,
        as_of=NOTES_UNTIL.date(),
        notes=tuple(ChartNote(note.note_time, note.content) for note in reversed(seeded)),
    )

    text = summarize_chart(chart)

    newest = seeded[-1]
    newest_assessment = newest.content.split("Assessment:\n1. ")[1].split("\n")[0]
    assert f"- {newest.note_time.date()} — {newest_assessment[:60]}" in text
    assert f"Latest objective findings ({newest.note_time.date()}):\n- BP " in text
    assert f"Allergies: {newest.content.split('Allergies: ')[1].split('.')[0]}" in text
    assert "Medication list (" in text
    assert "none recorded" not in text
