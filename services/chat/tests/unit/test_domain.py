"""The rules on what a model is shown: history windows, chart budgets, ages."""

from __future__ import annotations

from datetime import UTC, date, datetime

from chat.domain import Message, Role, age_in_years, history_window, notes_within

_AT = datetime(2026, 1, 1, tzinfo=UTC)


def _message(role: Role, content: str) -> Message:
    return Message(f"id-{content}", "chat", "owner", role, content, 1, _AT)


def _conversation(*contents: str) -> list[Message]:
    roles: list[Role] = ["user", "assistant"]
    return [_message(roles[index % 2], content) for index, content in enumerate(contents)]


def test_the_window_keeps_the_newest_messages_in_order() -> None:
    conversation = _conversation("q1", "a1", "q2", "a2", "q3", "a3")

    window = history_window(conversation, max_messages=4, max_chars=1000)

    assert [m.content for m in window] == ["q2", "a2", "q3", "a3"]


def test_the_window_never_opens_on_a_reply() -> None:
    conversation = _conversation("q1", "a1", "q2", "a2")

    window = history_window(conversation, max_messages=3, max_chars=1000)

    assert [m.content for m in window] == ["q2", "a2"]


def test_the_window_stops_at_the_character_budget_with_whole_messages() -> None:
    conversation = _conversation("q" * 50, "a" * 50, "Q" * 30, "A" * 30)

    window = history_window(conversation, max_messages=10, max_chars=100)

    assert [m.content for m in window] == ["Q" * 30, "A" * 30]


def test_an_empty_window_when_nothing_may_be_shown() -> None:
    conversation = _conversation("q1", "a1")

    assert history_window(conversation, max_messages=0, max_chars=1000) == []
    assert history_window(conversation, max_messages=10, max_chars=0) == []


def test_notes_are_kept_newest_first_within_the_budget() -> None:
    assert notes_within(["a" * 40, "b" * 40, "c" * 40], 100) == ["a" * 40, "b" * 40]
    # The newest note alone is too long: its beginning is better than nothing.
    assert notes_within(["a" * 150, "b" * 10], 100) == ["a" * 100]
    assert notes_within(["a"], 0) == []


def test_age_counts_only_birthdays_that_have_passed() -> None:
    born = date(1980, 2, 29)

    assert age_in_years(born, date(2026, 2, 28)) == 45
    assert age_in_years(born, date(2026, 3, 1)) == 46
    assert age_in_years(date(2000, 6, 15), date(2026, 6, 15)) == 26
