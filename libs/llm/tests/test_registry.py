from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from devstack.fake_llm import OPENAI_PATH, FakeLlmServer
from libs.llm.tests.conftest import API_KEY
from medstation_llm.errors import ModelNotConfigured
from medstation_llm.offline_chat import OfflineLanguageModel
from medstation_llm.offline_summary import OfflineSummarizer
from medstation_llm.prompted_summary import PromptedSummarizer
from medstation_llm.prompts import SUMMARY_SYSTEM_PROMPT
from medstation_llm.registry import (
    ANTHROPIC,
    OFFLINE,
    OFFLINE_MODEL,
    OLLAMA,
    OPENAI,
    ModelRegistry,
)
from medstation_llm.settings import LlmSettings
from medstation_llm.types import ChatRequest, ChatTurn, PatientChart
from medstation_platform.secret import Secret


async def test_offline_is_the_only_provider_by_default() -> None:
    registry = ModelRegistry(LlmSettings())

    assert registry.configured_providers() == (OFFLINE,)
    assert isinstance(registry.language_model(OFFLINE), OfflineLanguageModel)
    assert isinstance(registry.summarizer(OFFLINE, OFFLINE_MODEL), OfflineSummarizer)
    await registry.aclose()


@pytest.mark.parametrize(
    ("provider", "variable"),
    [
        (OLLAMA, "MEDSTATION_OLLAMA_BASE_URL"),
        (OPENAI, "MEDSTATION_OPENAI_API_KEY"),
        (ANTHROPIC, "MEDSTATION_ANTHROPIC_API_KEY"),
    ],
)
def test_unconfigured_provider_names_the_variable_that_configures_it(
    provider: str, variable: str
) -> None:
    registry = ModelRegistry(LlmSettings(openai_api_key=Secret("  ")))

    with pytest.raises(ModelNotConfigured) as raised:
        registry.language_model(provider)

    assert provider in str(raised.value)
    assert variable in str(raised.value)
    with pytest.raises(ModelNotConfigured):
        registry.summarizer(provider, "some-model")


def test_unknown_provider_is_not_configured() -> None:
    registry = ModelRegistry(LlmSettings(ollama_base_url="http://127.0.0.1:11434"))

    with pytest.raises(ModelNotConfigured) as raised:
        registry.language_model("gemini")

    assert str(raised.value) == (
        "unknown language model provider 'gemini'; this deployment offers offline, ollama"
    )


async def test_configured_providers_share_one_client_each(registry: ModelRegistry) -> None:
    assert registry.configured_providers() == (OFFLINE, OLLAMA, OPENAI, ANTHROPIC)
    assert registry.language_model(OPENAI) is registry.language_model(OPENAI)
    assert registry.language_model(OPENAI).provider == OPENAI


async def test_remote_summary_asks_for_the_sections_with_the_dated_chart(
    registry: ModelRegistry, fake_llm: FakeLlmServer, pneumonia_chart: PatientChart
) -> None:
    summarizer = registry.summarizer(OPENAI, "gpt-test")

    summary = await summarizer.summarize(pneumonia_chart, timeout_seconds=10)

    assert isinstance(summarizer, PromptedSummarizer)
    assert (summarizer.provider, summarizer.model) == (OPENAI, "gpt-test")
    assert (summary.provider, summary.model) == (OPENAI, "gpt-test")
    assert summary.text.startswith("openai fake reply to: Summarize this chart.")
    [sent] = fake_llm.requests_to(OPENAI_PATH)
    system, user = sent.body["messages"]
    assert system == {"role": "system", "content": SUMMARY_SYSTEM_PROMPT}
    assert "Active problems / assessments" in system["content"]
    assert user["role"] == "user"
    assert "--- Note of 2024-11-12 ---" in user["content"]
    assert "--- Note of 2024-11-05 ---" in user["content"]
    assert user["content"].index("2024-11-12") < user["content"].index("2024-11-05")


async def test_remote_calls_join_the_callers_trace_without_their_bodies(
    registry: ModelRegistry,
    pneumonia_chart: PatientChart,
    recorded_spans: InMemorySpanExporter,
) -> None:
    recorded_spans.clear()
    with trace.get_tracer(__name__).start_as_current_span("summary.job process") as job:
        await registry.summarizer(OPENAI, "gpt-test").summarize(pneumonia_chart, timeout_seconds=10)

    [call] = [span for span in recorded_spans.get_finished_spans() if span.name == "POST"]
    assert call.kind == trace.SpanKind.CLIENT
    assert call.parent is not None
    assert call.parent.span_id == job.get_span_context().span_id
    recorded = str(dict(call.attributes or {}))
    assert "pneumonia" not in recorded.lower()
    assert API_KEY not in recorded


async def test_aclose_closes_the_clients(registry: ModelRegistry) -> None:
    model = registry.language_model(OLLAMA)
    request = ChatRequest("m", (ChatTurn("user", "hi"),), timeout_seconds=5)

    await registry.aclose()

    with pytest.raises(RuntimeError, match="client has been closed"):
        await model.complete(request)
    assert registry.language_model(OLLAMA) is not model  # built afresh after closing
