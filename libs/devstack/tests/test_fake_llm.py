"""The fake LLM server answers like the real Ollama, OpenAI and Anthropic APIs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from devstack.fake_llm import ANTHROPIC_PATH, OLLAMA_PATH, OPENAI_PATH, FakeLlmServer, Fault

KEY = "sk-fake"
OPENAI_HEADERS = {"authorization": f"Bearer {KEY}"}
ANTHROPIC_HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
MESSAGES = [{"role": "user", "content": "How are you?"}]


@pytest.fixture
async def server() -> AsyncIterator[FakeLlmServer]:
    async with FakeLlmServer(api_key=KEY) as fake:
        yield fake


@pytest.fixture
async def client(server: FakeLlmServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        yield http


async def test_missing_model_gets_each_providers_400_body(client: httpx.AsyncClient) -> None:
    ollama = await client.post(OLLAMA_PATH, json={"messages": MESSAGES})
    openai = await client.post(OPENAI_PATH, json={"messages": MESSAGES}, headers=OPENAI_HEADERS)
    anthropic = await client.post(
        ANTHROPIC_PATH, json={"messages": MESSAGES, "max_tokens": 5}, headers=ANTHROPIC_HEADERS
    )

    assert (ollama.status_code, ollama.json()) == (400, {"error": "model is required"})
    assert openai.status_code == 400
    assert openai.json() == {
        "error": {
            "message": "you must provide a model parameter",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    assert anthropic.status_code == 400
    assert anthropic.json()["error"] == {
        "type": "invalid_request_error",
        "message": "model: Field required",
    }


async def test_wrong_or_missing_key_gets_401(client: httpx.AsyncClient) -> None:
    body = {"model": "m", "messages": MESSAGES, "max_tokens": 5}

    openai = await client.post(OPENAI_PATH, json=body, headers={"authorization": "Bearer no"})
    anthropic = await client.post(ANTHROPIC_PATH, json=body)

    assert openai.status_code == 401
    assert openai.json()["error"]["code"] == "invalid_api_key"
    assert anthropic.status_code == 401
    assert anthropic.json()["type"] == "error"
    assert anthropic.json()["error"]["type"] == "authentication_error"


async def test_scripted_rate_limit_carries_retry_after_then_recovers(
    server: FakeLlmServer, client: httpx.AsyncClient
) -> None:
    server.fail_next(Fault(status=429, retry_after=7))
    body = {"model": "m", "messages": MESSAGES, "max_tokens": 50}

    limited = await client.post(ANTHROPIC_PATH, json=body, headers=ANTHROPIC_HEADERS)
    answered = await client.post(ANTHROPIC_PATH, json=body, headers=ANTHROPIC_HEADERS)

    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "7"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert answered.status_code == 200
    [block] = answered.json()["content"]
    assert block == {"type": "text", "text": "anthropic fake reply to: How are you?"}
    assert len(server.requests) == 2


async def test_ollama_streams_ndjson_unless_told_not_to(client: httpx.AsyncClient) -> None:
    response = await client.post(OLLAMA_PATH, json={"model": "m", "messages": MESSAGES})

    lines = [json.loads(line) for line in response.text.splitlines()]
    assert response.headers["content-type"] == "application/x-ndjson"
    assert "".join(line["message"]["content"] for line in lines) == (
        "ollama fake reply to: How are you?"
    )
    assert [line["done"] for line in lines] == [False, False, False, False, True]
    assert lines[-1]["eval_count"] == 7  # words stand in for tokens


async def test_openai_stream_ends_with_usage_and_done(client: httpx.AsyncClient) -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip

    response = await client.post(OPENAI_PATH, json=body, headers=OPENAI_HEADERS)

    events = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 7
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


async def test_anthropic_stream_sends_the_named_events(client: httpx.AsyncClient) -> None:
    body = {"model": "m", "messages": MESSAGES, "max_tokens": 50, "stream": True}

    response = await client.post(ANTHROPIC_PATH, json=body, headers=ANTHROPIC_HEADERS)

    names = [block.split("\n")[0] for block in response.text.split("\n\n") if block]
    assert names[:3] == ["event: message_start", "event: content_block_start", "event: ping"]
    assert names[-3:] == [
        "event: content_block_stop",
        "event: message_delta",
        "event: message_stop",
    ]
