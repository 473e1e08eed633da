"""What a service asks a language model, and what comes back. No provider knows more."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class ChartNote:
    """One clinical note as the model sees it: when it was written and its SOAP text."""

    note_time: datetime
    content: str


@dataclass(frozen=True)
class PatientChart:
    """The minimum of a patient's record a model needs: no name, no MRN, no ids.

    `notes` are newest first, as the patient-record service lists them.
    """

    age_years: int
    sex: str
    date_of_birth: date
    as_of: date
    notes: Sequence[ChartNote] = ()


@dataclass(frozen=True)
class ChatTurn:
    role: Role
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """One question to a model: the conversation so far, the last turn being the user's.

    `timeout_seconds` is the whole budget, retries included; callers derive it from their
    own caller's remaining deadline. `patient` is the chart a patient-linked chat sees.
    """

    model: str
    messages: Sequence[ChatTurn]
    timeout_seconds: float
    max_output_tokens: int = 1024
    system: str = ""
    patient: PatientChart | None = None


@dataclass(frozen=True)
class TextDelta:
    """A piece of the reply, as the provider streams it."""

    text: str


@dataclass(frozen=True)
class Completion:
    """A finished reply, with what it cost and who wrote it."""

    text: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    latency_ms: int
    # Provider-specific reason the reply ended ("stop", "length", "end_turn", ...).
    finish_reason: str = field(default="stop")


# A stream is zero or more deltas followed by exactly one Completion holding the whole text.
StreamEvent = TextDelta | Completion
