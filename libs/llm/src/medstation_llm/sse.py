"""Server-sent events (text/event-stream) from a body's lines, as OpenAI and Anthropic stream."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSentEvent:
    event: str  # `message` when the server named none
    data: str


async def server_sent_events(lines: AsyncIterable[str]) -> AsyncGenerator[ServerSentEvent, None]:
    """Events as the spec dispatches them: at each blank line, data lines joined by `\\n`."""
    event, data = "", list[str]()
    async for line in lines:
        if not line:
            if data:
                yield ServerSentEvent(event or "message", "\n".join(data))
            event, data = "", []
            continue
        if line.startswith(":"):
            continue  # a comment, used as a keep-alive
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    if data:  # a last event without its blank line: the stream still said it
        yield ServerSentEvent(event or "message", "\n".join(data))
