"""Anthropic's Messages API: POST {base}/v1/messages, streamed as named server-sent events."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from medstation_llm.http_transport import HttpTransport
from medstation_llm.prompts import chat_messages, system_prompt
from medstation_llm.providers import ANTHROPIC
from medstation_llm.remote_reply import completion
from medstation_llm.sse import server_sent_events
from medstation_llm.types import ChatRequest, Completion, StreamEvent, TextDelta

PATH = "/v1/messages"
API_VERSION = "2023-06-01"


class AnthropicLanguageModel:
    def __init__(self, transport: HttpTransport, api_key: str) -> None:
        self._transport = transport
        self._headers = {"x-api-key": api_key, "anthropic-version": API_VERSION}

    @property
    def provider(self) -> str:
        return ANTHROPIC

    async def complete(self, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        answer = await self._transport.post_json(
            PATH, _body(request, stream=False), headers=self._headers,
            budget_seconds=request.timeout_seconds,
        )  # fmt: skip
        try:
            blocks = answer["content"]
            text = "".join(block["text"] for block in blocks if block.get("type") == "text")
            usage = answer.get("usage") or {}
        except (KeyError, TypeError) as error:
            raise self._transport.malformed() from error
        return completion(
            ANTHROPIC, request, text, started=started,
            input_tokens=usage.get("input_tokens"), output_tokens=usage.get("output_tokens"),
            finish_reason=answer.get("stop_reason"),
        )  # fmt: skip

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        lines = self._transport.post_stream(
            PATH, _body(request, stream=True), headers=self._headers,
            budget_seconds=request.timeout_seconds,
        )  # fmt: skip
        reply = _StreamedReply()
        async with aclosing(lines), aclosing(server_sent_events(lines)) as events:
            async for event in events:
                data = self._data(event.data)
                if event.event == "error" or data.get("type") == "error":
                    error = data.get("error") or {}
                    detail = f"{error.get('type')}: {error.get('message')}"
                    raise self._transport.provider_error(detail)
                piece = reply.absorb(event.event, data)
                if piece:
                    yield TextDelta(piece)
                if reply.stopped:
                    break
        if not reply.stopped:
            raise self._transport.provider_error("the stream ended before message_stop")
        yield completion(
            ANTHROPIC, request, "".join(reply.parts), started=started,
            input_tokens=reply.input_tokens, output_tokens=reply.output_tokens,
            finish_reason=reply.stop_reason,
        )  # fmt: skip

    async def aclose(self) -> None:
        await self._transport.aclose()

    def _data(self, data: str) -> dict[str, Any]:
        try:
            parsed = json.loads(data)
        except ValueError as error:
            raise self._transport.malformed() from error
        if not isinstance(parsed, dict):
            raise self._transport.malformed()
        return parsed


@dataclass
class _StreamedReply:
    """What the events of one streamed message have said so far."""

    parts: list[str] = field(default_factory=list)
    input_tokens: object = None
    output_tokens: object = None
    stop_reason: object = None
    stopped: bool = False

    def absorb(self, event: str, data: dict[str, Any]) -> str | None:
        """Takes in one event; returns its text, if it carried any."""
        if event == "message_start":
            self.input_tokens = ((data.get("message") or {}).get("usage") or {}).get("input_tokens")
        elif event == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                self.parts.append(str(delta["text"]))
                return self.parts[-1]
        elif event == "message_delta":
            self.stop_reason = (data.get("delta") or {}).get("stop_reason") or self.stop_reason
            self.output_tokens = (data.get("usage") or {}).get("output_tokens", self.output_tokens)
        elif event == "message_stop":
            self.stopped = True
        return None


def _body(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_output_tokens,
        "messages": chat_messages(request, system_as_message=False),
        "stream": stream,
    }
    system = system_prompt(request)
    if system:
        body["system"] = system
    return body
