"""Fixtures for the language-model tests: charts, the fake provider server, a registry on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import msgspec
import pytest

from devstack.fake_llm import FakeLlmServer
from medstation_llm.registry import ModelRegistry
from medstation_llm.settings import LlmSettings
from medstation_llm.types import ChartNote, PatientChart
from medstation_platform.secret import Secret

API_KEY = "sk-test-secret-key"

PNEUMONIA_VISIT = """\
S: 67-year-old woman with 4 days of productive cough, fever to 38.9 °C and right-sided
pleuritic chest pain. Non-smoker.
Meds: lisinopril 10 mg daily. Allergies: penicillin (rash).
O: T 38.6 °C, HR 104, RR 22, BP 132/78, SpO2 93 % on room air.
Crackles at the right lung base, bronchial breathing.
CXR: right lower lobe consolidation. WBC 14.2, CRP 96.
A: Community-acquired pneumonia, right lower lobe, CURB-65 score 1.
P: Amoxicillin 1 g TID x 5 days (rash was mild; benefits discussed).
Paracetamol 1 g QID PRN fever.
Review in 1 week, sooner if breathless or confused.
"""
PNEUMONIA_FOLLOW_UP = """\
Subjective
Follow-up of pneumonia. Cough improving, afebrile for 3 days, finished amoxicillin.

Objective
T 36.8 °C, HR 82, RR 16, SpO2 97 % on room air. Few residual crackles right base.

Assessment and Plan
1. Community-acquired pneumonia, improving - repeat chest X-ray in 6 weeks.
2. Essential hypertension (I10), well controlled - continue lisinopril 10 mg daily.
"""


def chart_of(*notes: tuple[datetime, str], age: int = 67, sex: str = "female") -> PatientChart:
    """A chart with `notes` (any order; the patient-record service lists newest first)."""
    ordered = sorted(notes, reverse=True)
    return PatientChart(
        age_years=age,
        sex=sex,
        date_of_birth=date(2024 - age, 3, 2),
        as_of=date(2024, 12, 1),
        notes=tuple(ChartNote(when, content) for when, content in ordered),
    )


@pytest.fixture
def pneumonia_chart() -> PatientChart:
    return chart_of(
        (datetime(2024, 11, 5, 9, 30, tzinfo=UTC), PNEUMONIA_VISIT),
        (datetime(2024, 11, 12, 10, 0, tzinfo=UTC), PNEUMONIA_FOLLOW_UP),
    )


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLlmServer]:
    async with FakeLlmServer(api_key=API_KEY) as server:
        yield server


def settings_for(server: FakeLlmServer, **overrides: Any) -> LlmSettings:
    on_server = LlmSettings(
        ollama_base_url=server.base_url,
        openai_base_url=server.openai_base_url,
        openai_api_key=Secret(API_KEY),
        anthropic_base_url=server.base_url,
        anthropic_api_key=Secret(API_KEY),
        llm_backoff_seconds=0.0,
        llm_max_attempts=3,
    )
    return msgspec.structs.replace(on_server, **overrides)


@pytest.fixture
async def registry(fake_llm: FakeLlmServer) -> AsyncIterator[ModelRegistry]:
    models = ModelRegistry(settings_for(fake_llm))
    yield models
    await models.aclose()
