"""What a clinician looks for in a chart, pulled out of its notes: problems, medicines and
plans, allergies, the latest findings, and one line per visit — each with its note's date.

Shared by the offline summarizer and the offline chat model, so both read a chart alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from medstation_llm import clinical_patterns as patterns
from medstation_llm.soap import SoapNote, parse_soap, starts_with_plan_verb
from medstation_llm.types import PatientChart

_FOLLOW_UP = re.compile(r"(?:follow[- ]?up|f/u|return|rtc|review)\b", re.IGNORECASE)
# A visit's line in the timeline is cut to this many characters.
TIMELINE_CHARS = 110


@dataclass(frozen=True)
class DatedNote:
    day: date
    soap: SoapNote


@dataclass(frozen=True)
class Dated:
    """A fact and the date of the note it comes from."""

    day: date
    text: str


@dataclass(frozen=True)
class Problem:
    text: str  # as the most recent note words it
    day: date  # the most recent note that assessed it
    first_day: date  # the earliest


@dataclass(frozen=True)
class ChartFacts:
    """Everything below is newest first and deduplicated (the newest wording wins)."""

    notes: tuple[DatedNote, ...]
    problems: tuple[Problem, ...]
    medication_list: Dated | None  # the newest `Medications: ...` line
    treatments: tuple[Dated, ...]  # plan items and dosed medicines
    allergies: Dated | None
    latest_findings: tuple[Dated, ...]  # all from the newest note that has any
    timeline: tuple[Dated, ...]  # one entry per note


def chart_facts(chart: PatientChart) -> ChartFacts:
    ordered = sorted(chart.notes, key=lambda note: note.note_time, reverse=True)
    notes = tuple(DatedNote(note.note_time.date(), parse_soap(note.content)) for note in ordered)
    return ChartFacts(
        notes=notes,
        problems=_problems(notes),
        medication_list=_first(
            Dated(note.day, items)
            for note in notes
            for line in note.soap.all_lines()
            if (items := patterns.medication_list(line)) is not None
        ),
        treatments=_deduplicated(_treatments(notes)),
        allergies=_first(
            Dated(note.day, patterns.allergy_statement(line))
            for note in notes
            for line in note.soap.all_lines()
            if patterns.mentions_allergy(line)
        ),
        latest_findings=_latest_findings(notes),
        timeline=tuple(Dated(note.day, visit_line(note.soap)) for note in notes),
    )


def assessments(soap: SoapNote) -> tuple[str, ...]:
    """The note's assessment, or the diagnoses labelled in a note without headers."""
    if soap.assessment:
        return soap.assessment
    labelled = (patterns.labelled_diagnosis(line) for line in soap.unlabelled)
    return tuple(diagnosis for diagnosis in labelled if diagnosis)


def visit_line(soap: SoapNote) -> str:
    """One line for the timeline: the assessment, else what the note opens with."""
    found = assessments(soap)
    text = "; ".join(item.rstrip(".") for item in found)
    if not text:
        opening = soap.subjective or soap.unlabelled or soap.plan or soap.objective
        text = opening[0] if opening else "(empty note)"
    return shorten(text, TIMELINE_CHARS)


def shorten(text: str, limit: int) -> str:
    """`text` cut at a word boundary to at most `limit` characters, marked with `…`."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0] if " " in text[: limit - 1] else text[: limit - 1]
    return cut.rstrip(" ,;:-") + "…"


def _problems(notes: tuple[DatedNote, ...]) -> tuple[Problem, ...]:
    newest: dict[str, Dated] = {}
    earliest: dict[str, date] = {}
    for note in notes:
        for item in assessments(note.soap):
            key = patterns.problem_key(item)
            newest.setdefault(key, Dated(note.day, item.rstrip(".")))
            earliest[key] = note.day  # notes are newest first: the last one seen is earliest
    return tuple(Problem(found.text, found.day, earliest[key]) for key, found in newest.items())


def _treatments(notes: tuple[DatedNote, ...]) -> Iterable[Dated]:
    for index, note in enumerate(notes):
        soap = note.soap
        for line in soap.subjective:
            if patterns.is_medication_like(line) and patterns.medication_list(line) is None:
                yield Dated(note.day, line)
        for line in soap.plan:
            # An older note's "follow up in 2 weeks" is history, not a plan.
            if index == 0 or not _FOLLOW_UP.match(line):
                yield Dated(note.day, line)
        for line in soap.unlabelled:
            if patterns.medication_list(line) is None and (
                patterns.is_medication_like(line) or starts_with_plan_verb(line)
            ):
                yield Dated(note.day, line)


def _latest_findings(notes: tuple[DatedNote, ...]) -> tuple[Dated, ...]:
    for note in notes:
        if note.soap.objective:
            return tuple(Dated(note.day, line) for line in note.soap.objective)
    for note in notes:
        found = [line for line in note.soap.unlabelled if patterns.is_finding(line)]
        if found:
            return tuple(Dated(note.day, line) for line in found)
    return ()


def _deduplicated(items: Iterable[Dated]) -> tuple[Dated, ...]:
    seen: set[str] = set()
    unique: list[Dated] = []
    for item in items:
        key = patterns.normalized(item.text)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return tuple(unique)


def _first(items: Iterable[Dated]) -> Dated | None:
    return next(iter(items), None)
