from __future__ import annotations

import pytest

from medstation_llm.soap import parse_soap


def test_letter_headers_with_text_on_the_same_line() -> None:
    note = parse_soap("S: cough\nO: crackles\nA: pneumonia\nP: amoxicillin 1 g TID")

    assert note.subjective == ("cough",)
    assert note.objective == ("crackles",)
    assert note.assessment == ("pneumonia",)
    assert note.plan == ("amoxicillin 1 g TID",)


@pytest.mark.parametrize(
    "header",
    ["Assessment", "ASSESSMENT:", "assessment :", "**Assessment:**", "## Assessment", "A:"],
)
def test_assessment_header_spellings(header: str) -> None:
    note = parse_soap(f"Subjective:\ncough\n{header}\n1. Pneumonia\nPlan\n- rest")

    assert note.assessment == ("Pneumonia",)
    assert note.plan == ("rest",)


def test_prose_starting_with_a_section_word_is_not_a_header() -> None:
    note = parse_soap("Assessment:\nPneumonia\nPlan to start amoxicillin tomorrow.")

    assert note.assessment == ("Pneumonia", "Plan to start amoxicillin tomorrow.")
    assert note.plan == ()


@pytest.mark.parametrize("header", ["Assessment and Plan:", "A/P:", "A&P", "Assessment & Plan"])
def test_combined_assessment_and_plan_is_split(header: str) -> None:
    note = parse_soap(
        f"{header}\n1. Community-acquired pneumonia - start amoxicillin 1 g TID\n"
        "2. Hypertension, controlled\n- Return if worse"
    )

    assert note.assessment == ("Community-acquired pneumonia", "Hypertension, controlled")
    assert note.plan == ("start amoxicillin 1 g TID", "Return if worse")


def test_inline_labels_become_separate_lines() -> None:
    note = parse_soap("S: Meds: lisinopril 10 mg daily. Allergies: NKDA.")

    assert note.subjective == ("Meds: lisinopril 10 mg daily.", "Allergies: NKDA.")


def test_a_pulse_in_the_vitals_is_not_a_plan_header() -> None:
    note = parse_soap("O:\nBP 120/80\nP: 88 bpm\nA: well")

    assert note.objective == ("BP 120/80", "P: 88 bpm")


def test_note_without_headers_is_kept_unlabelled() -> None:
    note = parse_soap("Seen today for cough.\nDiagnosis: bronchitis")

    assert not note.has_sections
    assert note.unlabelled == ("Seen today for cough.", "Diagnosis: bronchitis")
