"""The interfaces every provider implements, so services never know which one answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from medstation_llm.types import ChatRequest, Completion, PatientChart, StreamEvent


class LanguageModel(Protocol):
    """A chat model. Raises only `medstation_llm.errors` for provider failures."""

    @property
    def provider(self) -> str:
        """The provider's name as stored on models and summaries: `offline`, `openai`, ..."""
        ...

    async def complete(self, request: ChatRequest) -> Completion:
        """The whole reply at once."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Deltas as the provider produces them, then one Completion with the full text."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class Summarizer(Protocol):
    """Writes a clinician-facing summary of a patient's chart."""

    @property
    def provider(self) -> str: ...

    @property
    def model(self) -> str: ...

    async def summarize(self, chart: PatientChart, *, timeout_seconds: float) -> Completion:
        """A summary of `chart` (which has at least one note)."""
        ...

    async def aclose(self) -> None: ...
