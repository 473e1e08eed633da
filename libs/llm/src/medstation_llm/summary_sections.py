"""The sections of the offline chart summary, as plain-text lines, each bounded in length.

Every fact carries the date of the note it comes from, so a reader can check the source.
The offline chat model answers with the same sections, one or several at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

from medstation_llm.chart_facts import ChartFacts, shorten
from medstation_llm.types import PatientChart

# A bullet is cut to this many characters; sections list at most these many bullets.
LINE_CHARS = 160
MAX_PROBLEMS = 8
MAX_TREATMENTS = 10
MAX_FINDINGS = 6
MAX_TIMELINE = 8


def patient_line(chart: PatientChart, facts: ChartFacts) -> str:
    count = len(facts.notes)
    if count == 0:
        span = "no notes"
    elif count == 1:
        span = f"1 note, {facts.notes[0].day.isoformat()}"
    else:
        span = f"{count} notes, {facts.notes[-1].day.isoformat()} to {facts.notes[0].day}"
    return f"{describe_patient(chart)}; {span} (chart as of {chart.as_of.isoformat()})."


def describe_patient(chart: PatientChart) -> str:
    """`67-year-old female`, `5-month-old male`, `40-year-old patient (sex: other)`."""
    if chart.age_years >= 2:
        age = f"{chart.age_years}-year-old"
    else:
        born, today = chart.date_of_birth, chart.as_of
        months = (today.year - born.year) * 12 + today.month - born.month
        months -= today.day < born.day
        age = f"{max(months, 0)}-month-old"
    sex = chart.sex.strip().lower()
    if sex in ("female", "male"):
        return f"{age} {sex}"
    return f"{age} patient (sex: {sex or 'not recorded'})"


def allergy_line(facts: ChartFacts) -> str:
    if facts.allergies is None:
        return "Allergies: not recorded in these notes."
    found = facts.allergies
    return f"Allergies: {shorten(found.text, LINE_CHARS)} (noted {found.day.isoformat()})."


def problems_section(facts: ChartFacts) -> list[str]:
    bullets = []
    for problem in facts.problems:
        since = "" if problem.first_day == problem.day else f"; first noted {problem.first_day}"
        bullets.append(f"{shorten(problem.text, LINE_CHARS - 40)} ({problem.day}{since})")
    return _section("Active problems / assessments (most recent first):", bullets, MAX_PROBLEMS)


def treatments_section(facts: ChartFacts) -> list[str]:
    bullets = []
    if facts.medication_list is not None:
        listed = facts.medication_list
        bullets.append(f"Medication list ({listed.day}): {listed.text}")
    bullets += [f"{item.day}: {item.text}" for item in facts.treatments]
    return _section("Medications and plans (most recent first):", bullets, MAX_TREATMENTS)


def findings_section(facts: ChartFacts) -> list[str]:
    if not facts.latest_findings:
        return ["Latest objective findings: none recorded."]
    day = facts.latest_findings[0].day
    bullets = [item.text for item in facts.latest_findings]
    return _section(f"Latest objective findings ({day}):", bullets, MAX_FINDINGS)


def timeline_section(facts: ChartFacts) -> list[str]:
    bullets = [f"{item.day} — {item.text}" for item in facts.timeline]
    return _section("Timeline (newest first):", bullets, MAX_TIMELINE, unit="earlier notes")


def _section(title: str, bullets: Sequence[str], limit: int, unit: str = "more") -> list[str]:
    if not bullets:
        return [title, "- none recorded"]
    lines = [title, *(f"- {shorten(bullet, LINE_CHARS)}" for bullet in bullets[:limit])]
    hidden = len(bullets) - limit
    if hidden > 0:
        lines.append(f"- ({hidden} {unit} not shown)")
    return lines
