"""Each remote adapter against the fake server speaking its provider's real wire format."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from devstack.fake_llm import ANTHROPIC_PATH, OLLAMA_PATH, OPENAI_PATH, FakeLlmServer, Fault
from libs.llm.tests.conftest import API_KEY, settings_for
from medstation_llm.errors import ModelRejected, ModelTimeout, ModelUnavailable
from medstation_llm.registry import ANTHROPIC, OLLAMA, OPENAI, ModelRegistry
from medstation_llm.types import (
    ChatRequest,
    ChatTurn,
    Completion,
    PatientChart,
    StreamEvent,
    TextDelta,
)
from medstation_platform.secret import Secret

PATHS = {OLLAMA: OLLAMA_PATH, OPENAI: OPENAI_PATH, ANTHROPIC: ANTHROPIC_PATH}
FINISHED = {OLLAMA: "stop", OPENAI: "stop", ANTHROPIC: "end_turn"}
CUT_SHORT = {OLLAMA: "length", OPENAI: "length", ANTHROPIC: "max_tokens"}
providers = pytest.mark.parametrize("provider", [OLLAMA, OPENAI, ANTHROPIC])


def question(text: str = "Is the pneumonia improving?", **fields: Any) -> ChatRequest:
    asked = ChatRequest(model="test-model", messages=(ChatTurn("user", text),), timeout_seconds=10)
    return replace(asked, **fields)


async def collect_text(stream: AsyncIterator[StreamEvent], into: list[str]) -> None:
    async for event in stream:
        if isinstance(event, TextDelta):
            into.append(event.text)


@providers
async def test_complete_returns_text_usage_and_finish_reason(
    provider: str, registry: ModelRegistry
) -> None:
    reply = await registry.language_model(provider).complete(question())

    assert reply.text == f"{provider} fake reply to: Is the pneumonia improving?"
    assert (reply.provider, reply.model) == (provider, "test-model")
    assert reply.input_tokens == 4  # the fake counts prompt words
    assert reply.output_tokens == 8
    assert reply.finish_reason == FINISHED[provider]


@providers
async def test_reply_cut_at_the_token_limit_says_so(provider: str, registry: ModelRegistry) -> None:
    reply = await registry.language_model(provider).complete(question(max_output_tokens=3))

    assert reply.text == f"{provider} fake reply"
    assert reply.finish_reason == CUT_SHORT[provider]


@providers
async def test_stream_yields_deltas_then_the_completion(
    provider: str, registry: ModelRegistry
) -> None:
    events = [event async for event in registry.language_model(provider).stream(question())]

    *deltas, last = events
    assert len(deltas) == 4
    assert all(isinstance(delta, TextDelta) for delta in deltas)
    assert isinstance(last, Completion)
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == last.text
    assert last.text == f"{provider} fake reply to: Is the pneumonia improving?"
    assert (last.input_tokens, last.output_tokens) == (4, 8)
    assert last.finish_reason == FINISHED[provider]


@providers
async def test_sends_the_key_and_the_chart_in_the_system_prompt(
    provider: str, registry: ModelRegistry, fake_llm: FakeLlmServer, pneumonia_chart: PatientChart
) -> None:
    request = question(system="You are a careful assistant.", patient=pneumonia_chart)

    await registry.language_model(provider).complete(request)

    [sent] = fake_llm.requests_to(PATHS[provider])
    if provider == ANTHROPIC:
        system = sent.body["system"]
        assert sent.headers["x-api-key"] == API_KEY
        assert sent.headers["anthropic-version"] == "2023-06-01"
        assert sent.body["messages"] == [{"role": "user", "content": request.messages[0].content}]
    else:
        first, *rest = sent.body["messages"]
        assert first["role"] == "system"
        system = first["content"]
        assert rest == [{"role": "user", "content": request.messages[0].content}]
    if provider == OPENAI:
        assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert system.startswith("You are a careful assistant.")
    assert "Patient: 67-year-old female." in system
    assert "--- Note of 2024-11-12 ---" in system
    assert "Amoxicillin 1 g TID x 5 days" in system
    assert "1957" not in system  # no date of birth


@providers
async def test_rate_limit_is_retried_then_succeeds(
    provider: str, registry: ModelRegistry, fake_llm: FakeLlmServer
) -> None:
    fake_llm.fail_next(Fault(status=429, retry_after=0), Fault(status=429, retry_after=0))

    reply = await registry.language_model(provider).complete(question())

    assert reply.text.startswith(f"{provider} fake reply")
    assert len(fake_llm.requests_to(PATHS[provider])) == 3


@providers
async def test_retry_after_longer_than_the_budget_fails_at_once(
    provider: str, registry: ModelRegistry, fake_llm: FakeLlmServer
) -> None:
    fake_llm.fail_next(Fault(status=429, retry_after=120))

    with pytest.raises(ModelUnavailable) as raised:
        await registry.language_model(provider).complete(question(timeout_seconds=5))

    assert str(raised.value) == f"{provider} answered HTTP 429 after 1 attempt; retry later"
    assert len(fake_llm.requests_to(PATHS[provider])) == 1


@providers
@pytest.mark.parametrize("status", [500, 503, 529])
async def test_server_errors_exhaust_the_attempts(
    provider: str, status: int, registry: ModelRegistry, fake_llm: FakeLlmServer
) -> None:
    fake_llm.fail_next(*[Fault(status=status)] * 3)

    with pytest.raises(ModelUnavailable) as raised:
        await registry.language_model(provider).complete(question())

    assert str(raised.value) == f"{provider} answered HTTP {status} after 3 attempts; retry later"
    assert raised.value.metadata == {
        "provider": provider, "attempts": "3", "http_status": str(status)
    }  # fmt: skip
    assert len(fake_llm.requests_to(PATHS[provider])) == 3


@providers
async def test_dropped_connections_are_retried(
    provider: str, registry: ModelRegistry, fake_llm: FakeLlmServer
) -> None:
    fake_llm.fail_next(Fault(drop=True))

    events = [event async for event in registry.language_model(provider).stream(question())]

    assert isinstance(events[-1], Completion)
    assert len(fake_llm.requests_to(PATHS[provider])) == 2


@providers
async def test_slow_provider_times_out_within_the_budget(
    provider: str, registry: ModelRegistry, fake_llm: FakeLlmServer
) -> None:
    fake_llm.fail_next(Fault(delay=30))

    with pytest.raises(ModelTimeout) as raised:
        await registry.language_model(provider).complete(question(timeout_seconds=0.3))

    assert str(raised.value) == f"{provider} did not answer within 0.3 s"


@providers
async def test_settings_timeout_caps_a_longer_request_budget(
    provider: str, fake_llm: FakeLlmServer
) -> None:
    fake_llm.fail_next(Fault(delay=30))
    registry = ModelRegistry(settings_for(fake_llm, llm_timeout_seconds=0.2))
    try:
        with pytest.raises(ModelTimeout):
            await registry.language_model(provider).complete(question(timeout_seconds=60))
    finally:
        await registry.aclose()


@providers
async def test_stream_stalling_midway_times_out_without_a_retry(
    provider: str, registry: ModelRegistry, fake_llm: FakeLlmServer
) -> None:
    fake_llm.fail_next(Fault(delay=30, after_chunks=4))
    received: list[str] = []
    stream = registry.language_model(provider).stream(question(timeout_seconds=0.5))

    with pytest.raises(ModelTimeout):
        await collect_text(stream, received)

    assert received  # the first pieces arrived before the stall
    assert len(fake_llm.requests_to(PATHS[provider])) == 1


@providers
async def test_stream_cut_off_midway_is_unavailable_without_a_retry(
    provider: str, registry: ModelRegistry, fake_llm: FakeLlmServer
) -> None:
    fake_llm.fail_next(Fault(drop=True, after_chunks=2))

    with pytest.raises(ModelUnavailable):
        await collect_text(registry.language_model(provider).stream(question()), [])

    assert len(fake_llm.requests_to(PATHS[provider])) == 1


@pytest.mark.parametrize("provider", [OPENAI, ANTHROPIC])
async def test_wrong_api_key_is_rejected_without_a_retry(
    provider: str, fake_llm: FakeLlmServer, caplog: pytest.LogCaptureFixture
) -> None:
    registry = ModelRegistry(
        settings_for(
            fake_llm, openai_api_key=Secret("sk-wrong"), anthropic_api_key=Secret("sk-wrong")
        )
    )
    try:
        with caplog.at_level(logging.WARNING), pytest.raises(ModelRejected) as raised:
            await registry.language_model(provider).complete(question("secret symptom"))
    finally:
        await registry.aclose()

    message = str(raised.value)
    assert message.startswith(f"{provider} rejected the request (HTTP 401)")
    assert fake_llm.base_url not in message
    assert "sk-wrong" not in message
    assert len(fake_llm.requests_to(PATHS[provider])) == 1
    assert "HTTP 401" in caplog.text
    assert "secret symptom" not in caplog.text


@providers
async def test_unknown_model_is_rejected(provider: str, fake_llm: FakeLlmServer) -> None:
    fake_llm.known_models = frozenset({"known-model"})
    registry = ModelRegistry(settings_for(fake_llm))
    try:
        with pytest.raises(ModelRejected) as raised:
            await registry.language_model(provider).complete(question())
    finally:
        await registry.aclose()

    assert raised.value.metadata["http_status"] == "404"


@providers
async def test_unreachable_provider_is_unavailable(provider: str) -> None:
    async with FakeLlmServer() as stopped:
        settings = settings_for(stopped)
    registry = ModelRegistry(settings)
    try:
        with pytest.raises(ModelUnavailable) as raised:
            await registry.language_model(provider).complete(question())
    finally:
        await registry.aclose()

    assert "could not be reached (ConnectError) after 3 attempts" in str(raised.value)
