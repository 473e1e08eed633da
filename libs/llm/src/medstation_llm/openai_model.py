"""OpenAI's Chat Completions API (and servers that speak it): POST {base}/chat/completions."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from medstation_llm.http_transport import HttpTransport
from medstation_llm.prompts import chat_messages
from medstation_llm.providers import OPENAI
from medstation_llm.remote_reply import completion
from medstation_llm.sse import server_sent_events
from medstation_llm.types import ChatRequest, Completion, StreamEvent, TextDelta

PATH = "/chat/completions"


class OpenAiLanguageModel:
    def __init__(self, transport: HttpTransport, api_key: str) -> None:
        self._transport = transport
        self._headers = {"Authorization": f"Bearer {api_key}"}

    @property
    def provider(self) -> str:
        return OPENAI

    async def complete(self, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        answer = await self._transport.post_json(
            PATH, _body(request, stream=False), headers=self._headers,
            budget_seconds=request.timeout_seconds,
        )  # fmt: skip
        try:
            choice = answer["choices"][0]
            text = choice["message"]["content"] or ""
            usage = answer.get("usage") or {}
        except (KeyError, IndexError, TypeError) as error:
            raise self._transport.malformed() from error
        return completion(
            OPENAI, request, text, started=started,
            input_tokens=usage.get("prompt_tokens"), output_tokens=usage.get("completion_tokens"),
            finish_reason=choice.get("finish_reason"),
        )  # fmt: skip

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        lines = self._transport.post_stream(
            PATH, _body(request, stream=True), headers=self._headers,
            budget_seconds=request.timeout_seconds,
        )  # fmt: skip
        parts: list[str] = []
        usage: dict[str, Any] = {}
        finish_reason: object = None
        done = False
        async with aclosing(lines), aclosing(server_sent_events(lines)) as events:
            async for event in events:
                if event.data.strip() == "[DONE]":
                    done = True
                    break
                chunk = self._chunk(event.data)
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or ():
                    finish_reason = choice.get("finish_reason") or finish_reason
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        parts.append(piece)
                        yield TextDelta(piece)
        if not done and finish_reason is None:
            raise self._transport.provider_error("the stream ended before the reply did")
        yield completion(
            OPENAI, request, "".join(parts), started=started,
            input_tokens=usage.get("prompt_tokens"), output_tokens=usage.get("completion_tokens"),
            finish_reason=finish_reason,
        )  # fmt: skip

    async def aclose(self) -> None:
        await self._transport.aclose()

    def _chunk(self, data: str) -> dict[str, Any]:
        try:
            chunk = json.loads(data)
        except ValueError as error:
            raise self._transport.malformed() from error
        if not isinstance(chunk, dict):
            raise self._transport.malformed()
        if "error" in chunk:
            failure = chunk["error"]
            message = failure.get("message") if isinstance(failure, dict) else failure
            raise self._transport.provider_error(str(message))
        return chunk


def _body(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "messages": chat_messages(request, system_as_message=True),
        # `max_tokens` is deprecated and refused by the reasoning models.
        "max_completion_tokens": request.max_output_tokens,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body
