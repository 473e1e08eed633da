"""A fake Ollama + OpenAI + Anthropic server for tests, speaking each API's real wire format.

One asyncio HTTP/1.1 server answers by path: `/api/chat` as Ollama (JSON or NDJSON),
`/v1/chat/completions` as OpenAI and `/v1/messages` as Anthropic (JSON or server-sent
events). It checks what the real ones check (API key → 401, no model → 400, unknown model
→ 404, with that provider's error body), records every request, and replays scripted
faults (`fail_next(Fault(status=429, retry_after=0))`). Replies are deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

OLLAMA_PATH = "/api/chat"
OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"
_CREATED = 1_700_000_000  # a fixed timestamp, so replies are identical run to run
_Body = dict[str, Any]  # a JSON object
_Headers = Mapping[str, str] | None
_Refusal = tuple[int, _Body] | None
_LONG_REPLY_WORDS = 12  # of the question, echoed back


@dataclass(frozen=True)
class Fault:
    """For one request: answer `status` with the provider's error body (and `Retry-After`),
    or wait `delay` seconds first, or `drop` the connection; with `after_chunks`, a stream
    sends that many chunks before the delay or the drop."""

    status: int = 0
    retry_after: float | None = None
    delay: float = 0.0
    drop: bool = False
    after_chunks: int | None = None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: Mapping[str, str]  # names in lower case
    body: Any  # the parsed JSON, or None when it was not JSON


@dataclass
class FakeLlmServer:
    """`async with FakeLlmServer() as server:` then point a client at `server.base_url`."""

    api_key: str = "test-key"
    known_models: frozenset[str] | None = None  # None: any model name is accepted
    words_per_chunk: int = 2
    requests: list[RecordedRequest] = field(default_factory=list)
    _faults: list[Fault] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _handlers: dict[asyncio.Task[None], asyncio.StreamWriter] = field(default_factory=dict)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base_url(self) -> str:
        """Ollama's and Anthropic's base URL; OpenAI's is `openai_base_url`."""
        if self._server is None:
            raise RuntimeError("the fake LLM server is not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    def fail_next(self, *faults: Fault) -> None:
        """The next requests, one fault each, in order; later requests are answered."""
        self._faults.extend(faults)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path == path]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            self._stopping.set()  # wakes the faults that are sleeping
            for writer in self._handlers.values():  # ends idle keep-alive connections
                writer.close()
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def __aenter__(self) -> FakeLlmServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 -- a stream handler always runs in a task
        self._handlers[task] = writer
        try:
            while await self._exchange(reader, writer):
                pass  # keep-alive: the next request on the same connection
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            del self._handlers[task]
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Reads one request and answers it; False when the connection is done."""
        request_line = await reader.readline()
        if not request_line:
            return False
        method, path, _ = request_line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.requests.append(RecordedRequest(method, path, headers, body))
        fault = self._faults.pop(0) if self._faults else Fault()
        api = _API_BY_PATH.get(path)
        if method != "POST" or api is None:
            await _respond(writer, 404, "text/plain", b"404 page not found")
            return True
        if fault.after_chunks is None and (not await self._pause(fault.delay) or fault.drop):
            return False
        refusal = api.refusal(headers, body, self) or (
            (fault.status, api.error(fault.status, "scripted failure")) if fault.status else None
        )
        if refusal is not None:
            status, error = refusal
            extra = {} if fault.retry_after is None else {"retry-after": f"{fault.retry_after:g}"}
            await _respond(writer, status, "application/json", _json(error), extra)
            return True
        assert isinstance(body, dict)  # noqa: S101 -- refusal() rejected anything else
        text, finish = _reply(api, body)
        if not api.streams(body):
            await _respond(writer, 200, "application/json", _json(api.reply(body, text, finish)))
            return True
        words = text.split(" ")
        size = self.words_per_chunk
        pieces = [" ".join(words[at : at + size]) + " " for at in range(0, len(words), size)]
        pieces[-1] = pieces[-1].rstrip(" ")
        chunks = api.stream_chunks(body, pieces, finish)
        return await self._stream(writer, api.stream_type, chunks, fault)

    async def _stream(
        self, writer: asyncio.StreamWriter, kind: str, chunks: list[bytes], fault: Fault
    ) -> bool:
        """A 200 with a chunked body, one write per chunk; False when a fault cut it off."""
        head = f"HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ntransfer-encoding: chunked\r\n"
        writer.write(head.encode() + b"\r\n")
        for number, chunk in enumerate(chunks):
            if number == fault.after_chunks and (not await self._pause(fault.delay) or fault.drop):
                return False
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async def _pause(self, seconds: float) -> bool:
        """Waits `seconds`; False when the server is stopping meanwhile."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)
        return not self._stopping.is_set()


class _Api(ABC):
    """One provider's wire format: how it authenticates, validates, answers and fails."""

    name = ""
    finishes = ("stop", "length")  # why a reply ends: complete, or cut at the token limit
    stream_type = "text/event-stream"

    def refusal(self, headers: Mapping[str, str], body: Any, server: FakeLlmServer) -> _Refusal:
        """The error status and body a real server would answer this request with, if any."""
        if self.key_header and headers.get(self.key_header) != self.key_prefix + server.api_key:
            return 401, self.error(401, self.bad_key)
        if not isinstance(body, dict):
            return 400, self.error(400, "invalid JSON body")
        model = body.get("model")
        if not model:
            return 400, self.error(400, self.missing_model)
        if server.known_models is not None and model not in server.known_models:
            return 404, self.error(404, self.unknown_model.format(model=model))
        missing = [name for name in self.required if name not in body]
        return (400, self.error(400, f"{missing[0]}: Field required")) if missing else None

    missing_model = "model is required"
    unknown_model = "model {model} not found"
    required: tuple[str, ...] = ()  # other fields the API refuses to do without
    key_header, key_prefix, bad_key = "", "", ""  # how the API key is sent; none for Ollama

    def streams(self, body: _Body) -> bool:
        return body.get("stream") is True

    def max_tokens(self, body: _Body) -> int | None:
        value = body.get("max_tokens")
        return value if isinstance(value, int) else None

    # Each provider's own: its error body, its reply, and that reply as stream chunks.
    @abstractmethod
    def error(self, status: int, message: str) -> _Body: ...
    @abstractmethod
    def reply(self, body: _Body, text: str, finish: str) -> _Body: ...
    @abstractmethod
    def stream_chunks(self, body: _Body, pieces: Sequence[str], finish: str) -> list[bytes]: ...


class _Ollama(_Api):
    name = "ollama"
    stream_type = "application/x-ndjson"
    unknown_model = 'model "{model}" not found, try pulling it first'

    def streams(self, body: _Body) -> bool:
        return body.get("stream") is not False  # Ollama streams unless told not to

    def max_tokens(self, body: _Body) -> int | None:
        value = (body.get("options") or {}).get("num_predict")
        return value if isinstance(value, int) and value > 0 else None

    def error(self, status: int, message: str) -> _Body:
        return {"error": message}

    def reply(self, body: _Body, text: str, finish: str) -> _Body:
        return {
            "model": body["model"], "created_at": "2023-11-14T22:13:20Z",
            "message": {"role": "assistant", "content": text},
            "done_reason": finish, "done": True, "total_duration": 1_000_000,
            "prompt_eval_count": _prompt_tokens(body), "eval_count": _count(text),
        }  # fmt: skip

    def stream_chunks(self, body: _Body, pieces: Sequence[str], finish: str) -> list[bytes]:
        # Each line is the reply's shape with a piece of the text; the last adds the counts.
        last = {**self.reply(body, "", finish), "eval_count": _count("".join(pieces))}
        head = {"model": last["model"], "created_at": last["created_at"], "done": False}
        lines = [{**head, "message": {"role": "assistant", "content": piece}} for piece in pieces]
        return [_json(line) + b"\n" for line in [*lines, last]]


class _OpenAi(_Api):
    name = "openai"
    missing_model = "you must provide a model parameter"
    unknown_model = "The model `{model}` does not exist or you do not have access to it."

    key_header, key_prefix, bad_key = "authorization", "Bearer ", "Incorrect API key provided."

    def max_tokens(self, body: _Body) -> int | None:
        value = body.get("max_completion_tokens")
        return value if isinstance(value, int) else super().max_tokens(body)

    def error(self, status: int, message: str) -> _Body:
        kind, code = _OPENAI_ERRORS.get(status, ("invalid_request_error", None))
        if status >= 500:
            kind, code = "server_error", None
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def reply(self, body: _Body, text: str, finish: str) -> _Body:
        usage = {"prompt_tokens": _prompt_tokens(body), "completion_tokens": _count(text)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        message = {"role": "assistant", "content": text, "refusal": None}
        return {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": _CREATED,
            "model": body["model"], "usage": usage,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish}],
        }  # fmt: skip

    def stream_chunks(self, body: _Body, pieces: Sequence[str], finish: str) -> list[bytes]:
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": _CREATED,
                "model": body["model"]}  # fmt: skip
        extra = {"usage": None} if with_usage else {}

        def event(delta: _Body, reason: str | None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
            return b"data: " + _json({**base, "choices": [choice], **extra}) + b"\n\n"

        chunks = [event({"role": "assistant", "content": ""}, None)]
        chunks += [event({"content": piece}, None) for piece in pieces]
        chunks.append(event({}, finish))
        if with_usage:
            usage = self.reply(body, "".join(pieces), finish)["usage"]
            chunks.append(b"data: " + _json({**base, "choices": [], "usage": usage}) + b"\n\n")
        return [*chunks, b"data: [DONE]\n\n"]


_EMPTY_TEXT = {"type": "text", "text": ""}


class _Anthropic(_Api):
    name = "anthropic"
    finishes = ("end_turn", "max_tokens")
    missing_model = "model: Field required"
    unknown_model = "model: {model}"

    key_header, key_prefix, bad_key = "x-api-key", "", "invalid x-api-key"
    required = ("max_tokens", "messages")

    def error(self, status: int, message: str) -> _Body:
        kind = _ANTHROPIC_ERRORS.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message},
                "request_id": "req_fake"}  # fmt: skip

    def reply(self, body: _Body, text: str, finish: str) -> _Body:
        return {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{"type": "text", "text": text}], "stop_reason": finish,
            "stop_sequence": None,
            "usage": {"input_tokens": _prompt_tokens(body), "output_tokens": _count(text)},
        }  # fmt: skip

    def stream_chunks(self, body: _Body, pieces: Sequence[str], finish: str) -> list[bytes]:
        def event(name: str, data: _Body) -> bytes:
            return f"event: {name}\ndata: ".encode() + _json({"type": name, **data}) + b"\n\n"

        message = {**self.reply(body, "", finish), "content": [], "stop_reason": None}
        message["usage"]["output_tokens"] = 1
        return [
            event("message_start", {"message": message}),
            event("content_block_start", {"index": 0, "content_block": _EMPTY_TEXT}),
            event("ping", {}),
            *(event("content_block_delta",
                    {"index": 0, "delta": {"type": "text_delta", "text": piece}})
              for piece in pieces),
            event("content_block_stop", {"index": 0}),
            event("message_delta", {"delta": {"stop_reason": finish, "stop_sequence": None},
                                    "usage": {"output_tokens": _count("".join(pieces))}}),
            event("message_stop", {}),
        ]  # fmt: skip


_OPENAI_ERRORS: dict[int, tuple[str, str | None]] = {
    401: ("invalid_request_error", "invalid_api_key"), 429: ("requests", "rate_limit_exceeded"),
    404: ("invalid_request_error", "model_not_found")}  # fmt: skip
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 429: "rate_limit_error", 529: "overloaded_error",
}  # fmt: skip
_API_BY_PATH: dict[str, _Api] = {
    OLLAMA_PATH: _Ollama(), OPENAI_PATH: _OpenAi(), ANTHROPIC_PATH: _Anthropic()}  # fmt: skip


def _reply(api: _Api, body: _Body) -> tuple[str, str]:
    """The deterministic reply and why it ended (cut to `max_tokens` words, if given)."""
    asked = [str(m.get("content")) for m in _messages(body) if m.get("role") == "user"]
    question = asked[-1].split()[:_LONG_REPLY_WORDS] if asked else []
    words = [api.name, "fake", "reply", "to:", *question]
    stop, length = api.finishes
    max_tokens = api.max_tokens(body)
    if max_tokens is not None and len(words) > max_tokens:
        return " ".join(words[:max_tokens]), length
    return " ".join(words), stop


def _prompt_tokens(body: _Body) -> int:
    """Words in the prompt, standing in for tokens: system and every message."""
    system = body.get("system")
    texts = [system if isinstance(system, str) else ""]
    texts += [str(message.get("content", "")) for message in _messages(body)]
    return sum(_count(text) for text in texts)


def _messages(body: _Body) -> list[_Body]:
    return [message for message in body.get("messages") or () if isinstance(message, dict)]


def _count(text: str) -> int:
    return len(text.split())


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


async def _respond(
    writer: asyncio.StreamWriter, status: int, kind: str, payload: bytes, extra: _Headers = None
) -> None:
    reason = "Overloaded" if status == 529 else HTTPStatus(status).phrase
    lines = [f"HTTP/1.1 {status} {reason}",
             f"content-type: {kind}", f"content-length: {len(payload)}",
             *(f"{name}: {value}" for name, value in (extra or {}).items())]  # fmt: skip
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
    await writer.drain()
