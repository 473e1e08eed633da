"""Every model call shows up in Prometheus once: its latency by outcome, its failures by reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry

from devstack.fake_llm import FakeLlmServer, Fault
from libs.llm.tests.conftest import settings_for
from medstation_llm.errors import ModelRejected, ModelTimeout, ModelUnavailable
from medstation_llm.registry import OFFLINE, OFFLINE_MODEL, OPENAI, ModelRegistry
from medstation_llm.settings import LlmSettings
from medstation_llm.types import ChatRequest, ChatTurn, Completion, PatientChart
from medstation_platform.secret import Secret

QUESTION = ChatRequest(
    model="test-model", messages=(ChatTurn("user", "Is she improving?"),), timeout_seconds=10
)


class Scrape:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def calls(self, provider: str, outcome: str) -> float:
        labels = {"provider": provider, "outcome": outcome}
        return self._registry.get_sample_value("medstation_llm_request_seconds_count", labels) or 0

    def errors(self, provider: str, reason: str) -> float:
        labels = {"provider": provider, "reason": reason}
        return self._registry.get_sample_value("medstation_llm_errors_total", labels) or 0


@pytest.fixture
def prometheus() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def scrape(prometheus: CollectorRegistry) -> Scrape:
    return Scrape(prometheus)


@pytest.fixture
async def models(
    fake_llm: FakeLlmServer, prometheus: CollectorRegistry
) -> AsyncIterator[ModelRegistry]:
    registry = ModelRegistry(settings_for(fake_llm, llm_max_attempts=2), prometheus)
    yield registry
    await registry.aclose()


async def test_offline_chat_and_summary_calls_are_counted(
    prometheus: CollectorRegistry, scrape: Scrape, pneumonia_chart: PatientChart
) -> None:
    models = ModelRegistry(LlmSettings(), prometheus)

    await models.language_model(OFFLINE).complete(QUESTION)
    await models.summarizer(OFFLINE, OFFLINE_MODEL).summarize(pneumonia_chart, timeout_seconds=5)

    assert scrape.calls(OFFLINE, "ok") == 2
    await models.aclose()


async def test_a_remote_reply_is_one_call_and_a_prompted_summary_is_not_counted_twice(
    models: ModelRegistry, scrape: Scrape, pneumonia_chart: PatientChart
) -> None:
    await models.language_model(OPENAI).complete(QUESTION)
    await models.summarizer(OPENAI, "test-model").summarize(pneumonia_chart, timeout_seconds=5)

    assert scrape.calls(OPENAI, "ok") == 2


async def test_failures_are_counted_by_reason(
    fake_llm: FakeLlmServer, models: ModelRegistry, scrape: Scrape
) -> None:
    model = models.language_model(OPENAI)
    fake_llm.fail_next(Fault(status=503), Fault(status=503))
    with pytest.raises(ModelUnavailable):
        await model.complete(QUESTION)
    fake_llm.fail_next(Fault(delay=5))
    with pytest.raises(ModelTimeout):
        await model.complete(replace(QUESTION, timeout_seconds=0.2))

    assert scrape.calls(OPENAI, "unavailable") == 1
    assert scrape.errors(OPENAI, "MODEL_UNAVAILABLE") == 1
    assert scrape.calls(OPENAI, "timeout") == 1
    assert scrape.errors(OPENAI, "MODEL_TIMEOUT") == 1
    assert scrape.calls(OPENAI, "ok") == 0


async def test_a_refused_key_is_a_rejection(
    fake_llm: FakeLlmServer, prometheus: CollectorRegistry, scrape: Scrape
) -> None:
    settings = settings_for(fake_llm, openai_api_key=Secret("sk-wrong"))
    models = ModelRegistry(settings, prometheus)

    with pytest.raises(ModelRejected):
        await models.language_model(OPENAI).complete(QUESTION)

    assert scrape.errors(OPENAI, "MODEL_REJECTED") == 1
    await models.aclose()


async def test_a_stream_is_one_call_measured_to_its_end_and_abandoning_it_is_no_error(
    models: ModelRegistry, scrape: Scrape
) -> None:
    model = models.language_model(OPENAI)
    events = [event async for event in model.stream(QUESTION)]
    abandoned = model.stream(QUESTION)
    await anext(aiter(abandoned))
    await abandoned.aclose()  # type: ignore[attr-defined]  # the caller stopped reading

    assert isinstance(events[-1], Completion)
    assert scrape.calls(OPENAI, "ok") == 1
    assert scrape.calls(OPENAI, "cancelled") == 1
    assert scrape.errors(OPENAI, "INTERNAL") == 0


def test_measured_models_keep_their_provider_and_unmeasured_ones_are_untouched() -> None:
    plain = ModelRegistry(LlmSettings())
    measured = ModelRegistry(LlmSettings(), CollectorRegistry())

    assert type(plain.language_model(OFFLINE)).__name__ == "OfflineLanguageModel"
    assert measured.language_model(OFFLINE).provider == OFFLINE
    assert measured.summarizer(OFFLINE, OFFLINE_MODEL).model == OFFLINE_MODEL
