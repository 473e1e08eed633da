"""The offline summarizer: a structured, dated chart summary built from the SOAP sections.

No network and no randomness: the same chart always gives the same summary. Its length
is bounded by the section caps, whatever the number or length of the notes.
"""

from __future__ import annotations

import time

from medstation_llm.chart_facts import chart_facts
from medstation_llm.providers import OFFLINE, OFFLINE_MODEL
from medstation_llm.summary_sections import (
    allergy_line,
    findings_section,
    patient_line,
    problems_section,
    timeline_section,
    treatments_section,
)
from medstation_llm.token_estimate import estimate_tokens
from medstation_llm.types import Completion, PatientChart


def summarize_chart(chart: PatientChart) -> str:
    """The summary text: who, allergies, problems, medicines and plans, findings, visits."""
    facts = chart_facts(chart)
    if not facts.notes:
        return f"{patient_line(chart, facts)}\nNo notes to summarize."
    blocks = [
        [patient_line(chart, facts), allergy_line(facts)],
        problems_section(facts),
        treatments_section(facts),
        findings_section(facts),
        timeline_section(facts),
    ]
    return "\n\n".join("\n".join(block) for block in blocks)


class OfflineSummarizer:
    """`Summarizer` without a model: reads the notes' SOAP sections."""

    @property
    def provider(self) -> str:
        return OFFLINE

    @property
    def model(self) -> str:
        return OFFLINE_MODEL

    async def summarize(self, chart: PatientChart, *, timeout_seconds: float) -> Completion:
        started = time.perf_counter()
        text = summarize_chart(chart)
        return Completion(
            text=text,
            provider=OFFLINE,
            model=OFFLINE_MODEL,
            input_tokens=estimate_tokens(note.content for note in chart.notes),
            output_tokens=estimate_tokens(text),
            latency_ms=round((time.perf_counter() - started) * 1000),
        )

    async def aclose(self) -> None:
        return None
