"""Recognisers for the kinds of line a clinician scans a chart for.

Heuristics over free text, tuned on ordinary primary-care notes: a drug name (by its
stem, or a common name), a dose or frequency, a vital sign, a lab or imaging result.
"""

from __future__ import annotations

import re

_DRUG = re.compile(
    r"\b(?:[a-z]+(?:cillin|mycin|micin|floxacin|cycline|pril|sartan|olol|dipine|statin"
    r"|prazole|formin|gliflozin|gliptin|glutide|thiazide|semide|parin|xaban|gatran|terol"
    r"|tropium|sone|olone|vir|mab|azepam|azolam|oxetine|pramine|setron|tidine|codone"
    r"|profen|fenac|thyroxine|furantoin|azole|aline|triptan)"
    r"|cef[a-z]+|paracetamol|acetaminophen|aspirin|warfarin|insulin|morphine|tramadol"
    r"|clavulanate|nitroglycerin|allopurinol|colchicine|digoxin|lithium|iron|vitamin)\b",
    re.IGNORECASE,
)
_DOSE = re.compile(
    r"\b\d+(?:\.\d+)?\s*(?:mg(?!/dl)|mcg|µg|g|ml|units?|iu|puffs?|tabs?|tablets?|drops?)\b",
    re.IGNORECASE,
)
_FREQUENCY = re.compile(
    r"\b(?:bid|tid|qid|qds|tds|qd|od|q\d+h|prn|daily|nightly|at night|as needed"
    r"|(?:once|twice|three times|four times) (?:a )?(?:day|daily|week))\b",
    re.IGNORECASE,
)
_MEDICATION_LIST = re.compile(
    r"^(?:current\s+|home\s+)?(?:medications?|meds|rx)\s*:\s*(?P<items>.+)$", re.IGNORECASE
)
_ALLERGY_LABEL = re.compile(r"^(?:drug\s+)?allerg(?:y|ies)\s*:?\s*(?P<rest>.*)$", re.IGNORECASE)
_ALLERGY_MENTION = re.compile(r"allerg|\bnkda\b|\bnka\b", re.IGNORECASE)
_FINDING = re.compile(
    r"\b(?:BP|HR|RR|SpO2|SaO2|O2 sat|temp|pulse)\b\s*:?\s*\d|mmHg|\bbpm\b|°\s?[CF]\b"
    r"|\b(?:CXR|X-ray|CT|MRI|ECG|EKG|WBC|CRP|HbA1c|Hb|eGFR|LDL|TSH|INR|ALT|creatinine)\b",
    re.IGNORECASE,
)
_DIAGNOSIS_LABEL = re.compile(
    r"^(?:diagnos[ie]s|impression|dx|assessment)\s*[:\-]\s*(?P<rest>.+)$", re.IGNORECASE
)
_ICD10 = re.compile(r"\(([A-TV-Z]\d{2}(?:\.[0-9A-Z]{1,4})?)\)")


def mentions_drug(text: str) -> bool:
    return _DRUG.search(text) is not None and not mentions_allergy(text)


def is_medication_like(text: str) -> bool:
    """A drug named with a dose or a frequency: `amoxicillin 1 g TID for 5 days`."""
    return mentions_drug(text) and bool(_DOSE.search(text) or _FREQUENCY.search(text))


def medication_list(text: str) -> str | None:
    """The items of a `Medications: ...` line, or None for any other line."""
    match = _MEDICATION_LIST.match(text)
    return match["items"].strip().rstrip(".") if match else None


def mentions_allergy(text: str) -> bool:
    return _ALLERGY_MENTION.search(text) is not None


def allergy_statement(text: str) -> str:
    """`Allergies: penicillin (rash).` → `penicillin (rash)`; other mentions unchanged."""
    match = _ALLERGY_LABEL.match(text)
    rest = match["rest"].strip() if match else ""
    return (rest or text).rstrip(".")


def is_finding(text: str) -> bool:
    return _FINDING.search(text) is not None


def labelled_diagnosis(text: str) -> str | None:
    """`Diagnosis: pneumonia` in a note without SOAP headers → `pneumonia`."""
    match = _DIAGNOSIS_LABEL.match(text)
    return match["rest"].strip() if match else None


def problem_key(text: str) -> str:
    """What makes two assessments the same problem: its ICD-10 code, else its name.

    `Essential hypertension (I10), above target` and `... (I10), well controlled` are
    one problem; so are `Community-acquired pneumonia, RLL` and `... pneumonia, improving`.
    """
    code = _ICD10.search(text)
    if code is not None:
        return code[1].upper()
    head = re.split(r",|;|:|\s[-\u2013\u2014]\s|\s\(", text, maxsplit=1)[0]
    return normalized(head)


def normalized(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))
