"""The offline chat model: answers from the patient's chart and the conversation, no network.

With a patient, it picks the chart sections the question asks about (medications,
allergies, vitals, problems, visits), else the note lines that share the question's
words, else a short overview. Without one, it says what it is and recaps the discussion.
Deterministic: the same request gets the same reply.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence

from medstation_llm.chart_facts import ChartFacts, chart_facts, shorten
from medstation_llm.providers import OFFLINE
from medstation_llm.summary_sections import (
    allergy_line,
    describe_patient,
    findings_section,
    problems_section,
    timeline_section,
    treatments_section,
)
from medstation_llm.token_estimate import estimate_tokens
from medstation_llm.types import (
    ChatRequest,
    ChatTurn,
    Completion,
    PatientChart,
    StreamEvent,
    TextDelta,
)

# Streamed replies come in groups of this many words.
WORDS_PER_DELTA = 6
MAX_MATCHED_LINES = 6
NOTICE = "(Offline model: this answer quotes the chart's notes only; it adds no medical advice.)"

_Section = Callable[[ChartFacts], list[str]]
# Question word prefixes → the chart section that answers them.
_TOPICS: tuple[tuple[tuple[str, ...], _Section], ...] = (
    (("allerg", "nkda", "react"), lambda facts: [allergy_line(facts)]),
    (
        ("medic", "meds", "drug", "prescri", "dose", "dosing", "antibiot", "treat", "therap",
         "plan", "taking", "pill", "rx"),
        treatments_section,
    ),
    (
        ("vital", "bp", "pressure", "pulse", "heart", "temperat", "fever", "oxygen", "spo2",
         "sat", "exam", "finding", "lab", "result", "weight", "objective", "x-ray", "xray"),
        findings_section,
    ),
    (
        ("diagnos", "problem", "condition", "assess", "wrong", "issue", "impression",
         "disease", "illness"),
        problems_section,
    ),
    (("visit", "timeline", "history", "seen", "when", "note", "course", "progress"),
     timeline_section),
)  # fmt: skip
_OVERVIEW = ("summar", "overview", "brief", "recap")
_GENERIC = (
    *_OVERVIEW, "medic", "meds", "drug", "prescri", "allerg", "vital", "finding", "result",
    "exam", "objective", "diagnos", "problem", "condition", "assess", "issue", "visit",
    "timeline", "history", "note", "plan", "treat", "therap", "latest", "current", "recent",
    "last", "show", "doing",
)  # fmt: skip
# Question words → how notes write them.
_SYNONYMS = {
    "x-ray": ("x-ray", "xray", "cxr", "radiograph"),
    "xray": ("x-ray", "xray", "cxr", "radiograph"),
    "fever": ("fever", "febrile", "temp"),
    "temperature": ("temp", "febrile", "°c", "°f"),
    "oxygen": ("spo2", "oxygen", "o2 sat"),
    "sugar": ("glucose", "hba1c", "sugar"),
    "kidney": ("renal", "creatinine", "egfr", "kidney"),
    "blood": ("blood", "bp ", "hb "),
}
_COMMON_WORDS = (
    "a an and are as at be been but by can could did do does for from had has have he her "
    "his how i if in is it its me my of on or our she should so than that the their them "
    "then there these they this to was we were what when where which who why will with "
    "would you your please tell give show any some patient patients chart about any all "
    "today now also just more most there know need start started taking take given get got "
    "having been does doing going usual like much many each what's she's he's"
)
_STOPWORDS = frozenset(_COMMON_WORDS.split())


class OfflineLanguageModel:
    """`LanguageModel` that never leaves the process."""

    @property
    def provider(self) -> str:
        return OFFLINE

    async def complete(self, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        text = reply_to(request)
        return _completion(request, text, started)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        text = reply_to(request)
        for piece in word_groups(text, WORDS_PER_DELTA):
            await asyncio.sleep(0)  # let other tasks (and cancellation) in between pieces
            yield TextDelta(piece)
        yield _completion(request, text, started)

    async def aclose(self) -> None:
        return None


def reply_to(request: ChatRequest) -> str:
    question = _last_user_turn(request.messages)
    if request.patient is not None:
        return _chart_answer(request.patient, question)
    return _conversation_recap(request.messages, question)


def word_groups(text: str, size: int) -> list[str]:
    """`text` in pieces of `size` words that join back to exactly `text`."""
    words = re.findall(r"\s*\S+", text)
    pieces = ["".join(words[start : start + size]) for start in range(0, len(words), size)]
    trailing = text[len("".join(pieces)) :]
    if trailing:
        pieces.append(trailing)
    return pieces


def _chart_answer(chart: PatientChart, question: str) -> str:
    facts = chart_facts(chart)
    words = _words(question)
    sections = [section(facts) for prefixes, section in _TOPICS if _mentions(words, prefixes)]
    matched = _matching_lines(facts, [word for word in words if not _is_generic(word)])
    if matched:
        sections.append(matched)
    if not sections:
        sections = [[allergy_line(facts)], problems_section(facts), treatments_section(facts),
                    timeline_section(facts)]  # fmt: skip
    span = f"{len(facts.notes)} note{'s' if len(facts.notes) != 1 else ''}"
    if facts.notes:
        span += f", latest {facts.notes[0].day}"
    opening = f"From the chart of this {describe_patient(chart)} ({span}):"
    body = "\n\n".join("\n".join(section) for section in sections)
    return f"{opening}\n\n{body}\n\n{NOTICE}"


def _matching_lines(facts: ChartFacts, words: Sequence[str]) -> list[str]:
    terms = [word for word in words if len(word) >= 4 and word not in _STOPWORDS]
    if not terms:
        return []
    needles = [needle for term in terms for needle in _SYNONYMS.get(term, (term,))]
    found: list[str] = []
    for note in facts.notes:
        soap = note.soap
        for label, lines in (
            ("Subjective", soap.subjective), ("Objective", soap.objective),
            ("Assessment", soap.assessment), ("Plan", soap.plan), ("Note", soap.unlabelled),
        ):  # fmt: skip
            for line in lines:
                lowered = line.lower()
                if any(needle in lowered for needle in needles):
                    found.append(f"- {note.day} ({label}): {shorten(line, 150)}")
    if not found:
        return []
    shown = found[:MAX_MATCHED_LINES]
    if len(found) > len(shown):
        shown.append(f"- ({len(found) - len(shown)} more not shown)")
    return [f"Notes mentioning {', '.join(terms)}:", *shown]


def _conversation_recap(messages: Sequence[ChatTurn], question: str) -> str:
    asked = [turn.content for turn in messages if turn.role == "user"]
    terms = _key_terms(" ".join(asked))
    lines = [
        "This is the MedStation offline model. It works without a network connection and "
        "answers only from a patient's chart; this conversation is not linked to a patient, "
        "so it cannot answer the question itself.",
        f'You asked: "{shorten(question, 200)}"' if question else "No question was asked.",
    ]
    if terms:
        lines.append(f"Key terms in this conversation: {', '.join(terms)}.")
    earlier = asked[:-1][-3:]
    if earlier:
        lines.append("Earlier questions: " + " | ".join(shorten(q, 80) for q in earlier))
    lines.append(
        "For a generated answer, choose a remote model (Ollama, OpenAI or Anthropic) if this "
        "deployment offers one, or start a chat linked to a patient to ask about their chart."
    )
    return "\n".join(lines)


def _key_terms(text: str, limit: int = 8) -> list[str]:
    words = [word for word in _words(text) if len(word) >= 4 and word not in _STOPWORDS]
    counts = Counter(words)
    first_seen = {word: index for index, word in reversed(list(enumerate(words)))}
    return sorted(counts, key=lambda word: (-counts[word], first_seen[word]))[:limit]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9][a-z0-9'\-]*", text.lower())


def _is_generic(word: str) -> bool:
    """A word that names a kind of fact (`medications`), not a fact to look for."""
    return _mentions([word], _GENERIC)


def _mentions(words: Sequence[str], prefixes: Sequence[str]) -> bool:
    return any(word.startswith(prefix) for word in words for prefix in prefixes)


def _last_user_turn(messages: Sequence[ChatTurn]) -> str:
    return next((turn.content for turn in reversed(messages) if turn.role == "user"), "")


def _completion(request: ChatRequest, text: str, started: float) -> Completion:
    chart = request.patient.notes if request.patient is not None else ()
    return Completion(
        text=text,
        provider=OFFLINE,
        model=request.model,
        input_tokens=estimate_tokens(
            request.system,
            (turn.content for turn in request.messages),
            (note.content for note in chart),
        ),
        output_tokens=estimate_tokens(text),
        latency_ms=round((time.perf_counter() - started) * 1000),
    )
