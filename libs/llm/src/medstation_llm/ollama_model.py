"""Ollama's chat API: POST {base}/api/chat, streamed as one JSON object per line."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from medstation_llm.http_transport import HttpTransport
from medstation_llm.prompts import chat_messages
from medstation_llm.providers import OLLAMA
from medstation_llm.remote_reply import completion
from medstation_llm.types import ChatRequest, Completion, StreamEvent, TextDelta

PATH = "/api/chat"
_NO_HEADERS: dict[str, str] = {}


class OllamaLanguageModel:
    def __init__(self, transport: HttpTransport) -> None:
        self._transport = transport

    @property
    def provider(self) -> str:
        return OLLAMA

    async def complete(self, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        answer = await self._transport.post_json(
            PATH, _body(request, stream=False), headers=_NO_HEADERS,
            budget_seconds=request.timeout_seconds,
        )  # fmt: skip
        try:
            text = answer["message"]["content"]
        except (KeyError, TypeError) as error:
            raise self._transport.malformed() from error
        return completion(
            OLLAMA, request, str(text), started=started,
            input_tokens=answer.get("prompt_eval_count"), output_tokens=answer.get("eval_count"),
            finish_reason=answer.get("done_reason"),
        )  # fmt: skip

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        lines = self._transport.post_stream(
            PATH, _body(request, stream=True), headers=_NO_HEADERS,
            budget_seconds=request.timeout_seconds,
        )  # fmt: skip
        parts: list[str] = []
        async with aclosing(lines):
            async for line in lines:
                if not line.strip():
                    continue
                chunk = self._chunk(line)
                piece = (chunk.get("message") or {}).get("content")
                if piece:
                    parts.append(piece)
                    yield TextDelta(piece)
                if chunk.get("done"):
                    yield completion(
                        OLLAMA, request, "".join(parts), started=started,
                        input_tokens=chunk.get("prompt_eval_count"),
                        output_tokens=chunk.get("eval_count"),
                        finish_reason=chunk.get("done_reason"),
                    )  # fmt: skip
                    return
        raise self._transport.provider_error("the stream ended before done")

    async def aclose(self) -> None:
        await self._transport.aclose()

    def _chunk(self, line: str) -> dict[str, Any]:
        try:
            chunk = json.loads(line)
        except ValueError as error:
            raise self._transport.malformed() from error
        if not isinstance(chunk, dict):
            raise self._transport.malformed()
        if "error" in chunk:
            raise self._transport.provider_error(str(chunk["error"]))
        return chunk


def _body(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    return {
        "model": request.model,
        "messages": chat_messages(request, system_as_message=True),
        "stream": stream,  # Ollama streams unless told not to
        "options": {"num_predict": request.max_output_tokens},
    }
