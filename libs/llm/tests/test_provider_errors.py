"""Failures a provider reports inside a 2xx answer, and answers no adapter can read."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from medstation_llm.anthropic_model import AnthropicLanguageModel
from medstation_llm.errors import ModelUnavailable
from medstation_llm.http_transport import HttpTransport
from medstation_llm.model import LanguageModel
from medstation_llm.ollama_model import OllamaLanguageModel
from medstation_llm.openai_model import OpenAiLanguageModel
from medstation_llm.retry_policy import RetryPolicy
from medstation_llm.types import ChatRequest, ChatTurn

REQUEST = ChatRequest("m", (ChatTurn("user", "hello"),), timeout_seconds=5)
Build = Callable[[HttpTransport], LanguageModel]
BUILDERS: dict[str, Build] = {
    "ollama": OllamaLanguageModel,
    "openai": lambda transport: OpenAiLanguageModel(transport, "key"),
    "anthropic": lambda transport: AnthropicLanguageModel(transport, "key"),
}
MIDWAY_ERRORS = {
    "ollama": b'{"message":{"content":"Hel"},"done":false}\n{"error":"model runner crashed"}\n',
    "openai": b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n'
    b'data: {"error":{"message":"server error","type":"server_error"}}\n\n',
    "anthropic": b'event: content_block_delta\ndata: {"type":"content_block_delta",'
    b'"delta":{"type":"text_delta","text":"Hel"}}\n\n'
    b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
    b'"message":"Overloaded"}}\n\n',
}


def model_answering(provider: str, status: int, body: bytes) -> LanguageModel:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    client = httpx.AsyncClient(
        base_url="http://provider.test", transport=httpx.MockTransport(answer)
    )
    return BUILDERS[provider](HttpTransport(provider, client, RetryPolicy(5, 1, 0)))


async def collect(model: LanguageModel) -> list[object]:
    return [event async for event in model.stream(REQUEST)]


@pytest.mark.parametrize("provider", sorted(MIDWAY_ERRORS))
async def test_error_reported_midway_through_a_stream_is_unavailable(provider: str) -> None:
    model = model_answering(provider, 200, MIDWAY_ERRORS[provider])

    with pytest.raises(ModelUnavailable) as raised:
        await collect(model)

    assert str(raised.value) == f"{provider} failed while answering; retry later"
    await model.aclose()


@pytest.mark.parametrize("provider", sorted(BUILDERS))
async def test_answer_that_is_not_the_providers_format_is_unavailable(provider: str) -> None:
    model = model_answering(provider, 200, b'{"unexpected": true}')

    with pytest.raises(ModelUnavailable) as raised:
        await model.complete(REQUEST)

    assert str(raised.value) == f"{provider} sent a response that could not be read"
    await model.aclose()


@pytest.mark.parametrize("provider", sorted(BUILDERS))
async def test_stream_that_ends_before_the_reply_does_is_unavailable(provider: str) -> None:
    model = model_answering(provider, 200, b"")

    with pytest.raises(ModelUnavailable):
        await anext(aiter(model.stream(REQUEST)))
    await model.aclose()
