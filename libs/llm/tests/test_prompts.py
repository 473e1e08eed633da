from __future__ import annotations

from datetime import UTC, datetime, timedelta

from libs.llm.tests.conftest import chart_of
from medstation_llm.prompts import CHART_CHAR_BUDGET, render_chart, system_prompt
from medstation_llm.types import ChatRequest, ChatTurn


def test_chart_is_rendered_newest_first_under_dated_headings() -> None:
    chart = chart_of(
        (datetime(2021, 1, 2, 9, tzinfo=UTC), "A: asthma"),
        (datetime(2023, 4, 5, 9, tzinfo=UTC), "A: eczema"),
        age=30,
        sex="male",
    )

    assert render_chart(chart) == (
        "Patient: 30-year-old male. Chart as of 2024-12-01; 2 notes, newest first.\n\n"
        "--- Note of 2023-04-05 ---\nA: eczema\n\n--- Note of 2021-01-02 ---\nA: asthma"
    )


def test_oldest_notes_beyond_the_budget_are_left_out() -> None:
    long_note = "S: " + "x" * (CHART_CHAR_BUDGET // 3)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    chart = chart_of(*[(start + timedelta(days=day), long_note) for day in range(5)])

    rendered = render_chart(chart)

    assert rendered.count("--- Note of") == 2
    assert "--- Note of 2020-01-05 ---" in rendered
    assert rendered.endswith("(3 older notes not included)")


def test_system_prompt_is_empty_without_system_text_or_patient() -> None:
    request = ChatRequest("m", (ChatTurn("user", "hi"),), timeout_seconds=1)

    assert system_prompt(request) == ""
