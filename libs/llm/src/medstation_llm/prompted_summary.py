"""A chart summary written by a remote model, asked for the offline summary's sections."""

from __future__ import annotations

from medstation_llm.model import LanguageModel
from medstation_llm.prompts import SUMMARY_SYSTEM_PROMPT, summary_request
from medstation_llm.types import ChatRequest, ChatTurn, Completion, PatientChart

# Room for the ~300 words asked for, with margin for a verbose model.
SUMMARY_MAX_OUTPUT_TOKENS = 1024


class PromptedSummarizer:
    """`Summarizer` over any `LanguageModel`; the model (and its connections) is not ours."""

    def __init__(self, model: LanguageModel, model_name: str) -> None:
        self._model = model
        self._model_name = model_name

    @property
    def provider(self) -> str:
        return self._model.provider

    @property
    def model(self) -> str:
        return self._model_name

    async def summarize(self, chart: PatientChart, *, timeout_seconds: float) -> Completion:
        return await self._model.complete(
            ChatRequest(
                model=self._model_name,
                messages=(ChatTurn("user", summary_request(chart)),),
                timeout_seconds=timeout_seconds,
                max_output_tokens=SUMMARY_MAX_OUTPUT_TOKENS,
                system=SUMMARY_SYSTEM_PROMPT,
            )
        )

    async def aclose(self) -> None:
        return None  # the registry closes the shared model
