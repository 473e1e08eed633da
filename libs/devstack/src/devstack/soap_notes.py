"""Made-up SOAP notes for a made-up patient: 1 to 5 per patient, spread over past years.

Like demo_people, a note depends only on (namespace, patient, note number) and the
`until` instant the notes must precede, so a re-run sends the same request ids (and the
service answers with the notes it already has).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from devstack.clinical_catalogue import (
    ACUTE_VISITS,
    ALLERGIES,
    CHRONIC_CONDITIONS,
    AcuteVisit,
    ChronicCondition,
)
from devstack.demo_people import PatientSpec, age_on, request_id, rng_for

MIN_NOTES = 1
MAX_NOTES = 5
# Notes go back at most this far (and never before birth).
_HISTORY_DAYS = 6 * 365
# Notes are timed against this fixed instant (or now, if the clock is earlier), so that
# the same patient gets the same notes whatever day the seed runs.
NOTES_UNTIL = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class NoteSpec:
    """What CreateNote is sent for one note."""

    request_id: str
    note_time: datetime
    content: str


def notes_until(now: datetime) -> datetime:
    return min(NOTES_UNTIL, now)


@dataclass(frozen=True)
class _Patient:
    """What stays the same from one note to the next."""

    spec: PatientSpec
    conditions: list[ChronicCondition]
    allergy: str
    adult_weight_kg: float
    systolic: int
    diastolic: int


def notes_for(namespace: uuid.UUID, patient: PatientSpec, until: datetime) -> list[NoteSpec]:
    """The patient's notes, oldest first, each strictly before `until`."""
    rng = rng_for(namespace, f"patient/{patient.index}/notes")
    conditions = _chronic_conditions(rng, patient, until.date())
    hypertensive = any(condition.icd10 == "I10" for condition in conditions)
    person = _Patient(
        spec=patient,
        conditions=conditions,
        allergy=rng.choice(ALLERGIES),
        adult_weight_kg=rng.uniform(50, 110),
        systolic=rng.randint(135, 150) if hypertensive else rng.randint(108, 130),
        diastolic=rng.randint(84, 94) if hypertensive else rng.randint(64, 82),
    )
    times = _note_times(rng, patient.date_of_birth, until)
    return [
        NoteSpec(
            request_id=request_id(namespace, f"patient/{patient.index}/note/{number}"),
            note_time=note_time,
            content=_note(
                rng_for(namespace, f"patient/{patient.index}/note/{number}"),
                person,
                age_on(patient.date_of_birth, note_time.date()),
            ),
        )
        for number, note_time in enumerate(times)
    ]


def _chronic_conditions(
    rng: random.Random, patient: PatientSpec, day: date
) -> list[ChronicCondition]:
    age = age_on(patient.date_of_birth, day)
    eligible = [condition for condition in CHRONIC_CONDITIONS if age >= condition.min_age]
    # Older patients carry more problems: about one per 20 years of age, at most three.
    count = min(len(eligible), rng.randint(0, min(3, age // 20)))
    return rng.sample(eligible, count)


def _note_times(rng: random.Random, born: date, until: datetime) -> list[datetime]:
    first_day = max(born + timedelta(days=1), (until - timedelta(days=_HISTORY_DAYS)).date())
    span_days = max(1, (until.date() - first_day).days)
    count = rng.randint(MIN_NOTES, MAX_NOTES)
    days = [rng.randrange(span_days) for _ in range(count)]
    # Clinic hours, 08:00 to 17:59 UTC; a note on `until`'s day would be cut off by it.
    return sorted(
        datetime.combine(first_day + timedelta(days=day), time(rng.randint(8, 17)), UTC)
        + timedelta(minutes=rng.randrange(60))
        for day in days
    )


def _note(rng: random.Random, patient: _Patient, age: int) -> str:
    conditions = patient.conditions
    follow_up = bool(conditions) and rng.random() < 0.6
    visits = [visit for visit in ACUTE_VISITS if visit.min_age <= age <= visit.max_age]
    acute = None if follow_up or not visits else rng.choice(visits)
    reviewed = rng.sample(conditions, rng.randint(1, len(conditions))) if follow_up else []
    return "\n\n".join(
        (
            "Subjective:\n" + _subjective(rng, patient, age, acute, reviewed),
            "Objective:\n" + _objective(rng, patient, age, acute, reviewed),
            "Assessment:\n" + _assessment(rng, acute, reviewed),
            "Plan:\n" + _plan(rng, acute, reviewed),
        )
    )


def _subjective(
    rng: random.Random,
    patient: _Patient,
    age: int,
    acute: AcuteVisit | None,
    reviewed: list[ChronicCondition],
) -> str:
    sex = patient.spec.sex
    person = {"female": "woman", "male": "man"}.get(sex, "patient")
    if age < 18:
        person = {"female": "girl", "male": "boy"}.get(sex, "child")
    if acute is not None:
        lines = [f"{age}-year-old {person} presents with {acute.reason}.", *acute.history]
    else:
        names = _and_list([condition.name.lower() for condition in reviewed])
        lines = [f"{age}-year-old {person} here for follow-up of {names}."]
        lines += [rng.choice(condition.complaints) for condition in reviewed]
    medications = "; ".join(c.medication for c in patient.conditions) or "none"
    lines += [f"Medications: {medications}.", f"Allergies: {patient.allergy}."]
    return "\n".join(lines)


def _and_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _objective(
    rng: random.Random,
    patient: _Patient,
    age: int,
    acute: AcuteVisit | None,
    reviewed: list[ChronicCondition],
) -> str:
    findings = list(acute.findings) if acute is not None else []
    findings += [rng.choice(condition.findings) for condition in reviewed]
    return "\n".join((_vitals(rng, patient, age), *(findings or ["Exam unremarkable."])))


def _vitals(rng: random.Random, patient: _Patient, age: int) -> str:
    # Children: vitals and weight by age; adults: around the patient's own baseline.
    child = age < 12
    systolic = rng.randint(90, 115) if child else patient.systolic + rng.randint(-8, 8)
    diastolic = rng.randint(55, 75) if child else patient.diastolic + rng.randint(-5, 5)
    heart_rate = rng.randint(80, 120) if child else rng.randint(56, 96)
    if child:
        weight = 3.5 + age * 3.2 + rng.uniform(-1.5, 1.5)
    else:
        weight = patient.adult_weight_kg * min(1.0, 0.55 + age / 40) + rng.uniform(-2, 2)
    return (
        f"BP {systolic}/{diastolic} mmHg, HR {heart_rate} bpm, RR {rng.randint(12, 20)}, "
        f"T {rng.uniform(36.3, 37.9):.1f} °C, SpO2 {rng.randint(94, 100)} % on room air, "
        f"weight {weight:.1f} kg."
    )


def _assessment(
    rng: random.Random, acute: AcuteVisit | None, reviewed: list[ChronicCondition]
) -> str:
    items = [acute.assessment] if acute is not None else []
    items += [f"{c.name} ({c.icd10}), {rng.choice(c.statuses)}" for c in reviewed]
    return "\n".join(f"{number}. {item}" for number, item in enumerate(items, start=1))


def _plan(rng: random.Random, acute: AcuteVisit | None, reviewed: list[ChronicCondition]) -> str:
    steps = [rng.choice(acute.plans)] if acute is not None else []
    steps += [rng.choice(condition.plans) for condition in reviewed]
    weeks = rng.choice((2, 4, 6, 12, 26))
    steps.append(f"Follow up in {weeks} weeks, sooner if worse.")
    return "\n".join(f"- {step}" for step in steps)
