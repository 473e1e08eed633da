"""What a remote model is shown: the one place a chart and a system prompt become text.

A chart carries no name, MRN or ids by design; the prompt adds no date of birth either,
only age and sex, so the remote provider sees no more than the question needs.
"""

from __future__ import annotations

from medstation_llm.summary_sections import describe_patient
from medstation_llm.types import ChatRequest, PatientChart

# Notes beyond this many characters (roughly 6 000 tokens) are left out, oldest first.
CHART_CHAR_BUDGET = 24_000
PATIENT_PREAMBLE = (
    "This conversation is about one patient, whose chart follows (it carries no name or "
    "identifiers by design). Use it where relevant, cite the dates of the notes you rely on, "
    "and say so when the chart does not answer the question."
)
SUMMARY_SYSTEM_PROMPT = """\
You summarize a patient's chart for a busy clinician. Use only facts found in the notes; \
never invent findings, doses or dates. Write plain text (no Markdown headings or tables), \
under 300 words, with these parts in this order:
1. One line with the patient's age and sex, and the number and date range of the notes.
2. "Allergies:" as last recorded, with the note date.
3. "Active problems / assessments (most recent first):" one bullet per distinct problem, \
with the date of the note that last assessed it.
4. "Medications and plans (most recent first):" current medications and plan items, each \
with its note date.
5. "Latest objective findings (YYYY-MM-DD):" vitals, examination and results from the \
most recent note that has them.
6. "Timeline (newest first):" one line per note, "YYYY-MM-DD — its assessment", at most \
8 lines, then "(N earlier notes not shown)" if there are more."""


def system_prompt(request: ChatRequest) -> str:
    """The request's system text, then the patient's chart when the chat is about one."""
    parts = [request.system.strip()] if request.system.strip() else []
    if request.patient is not None:
        parts.append(f"{PATIENT_PREAMBLE}\n\n{render_chart(request.patient)}")
    return "\n\n".join(parts)


def chat_messages(request: ChatRequest, *, system_as_message: bool) -> list[dict[str, str]]:
    """The conversation as `{role, content}` dicts, led by a `system` message if asked."""
    messages = [{"role": turn.role, "content": turn.content} for turn in request.messages]
    system = system_prompt(request)
    if system_as_message and system:
        messages.insert(0, {"role": "system", "content": system})
    return messages


def summary_request(chart: PatientChart) -> str:
    return f"Summarize this chart.\n\n{render_chart(chart)}"


def render_chart(chart: PatientChart) -> str:
    """Age, sex and the notes newest first, each under its date, within the budget."""
    notes = sorted(chart.notes, key=lambda note: note.note_time, reverse=True)
    lines = [
        f"Patient: {describe_patient(chart)}. Chart as of {chart.as_of.isoformat()}; "
        f"{len(notes)} note{'s' if len(notes) != 1 else ''}, newest first."
    ]
    used = 0
    for shown, note in enumerate(notes):
        block = f"--- Note of {note.note_time.date().isoformat()} ---\n{note.content.strip()}"
        if shown and used + len(block) > CHART_CHAR_BUDGET:
            lines.append(f"({len(notes) - shown} older notes not included)")
            break
        lines.append(block)
        used += len(block)
    return "\n\n".join(lines)
