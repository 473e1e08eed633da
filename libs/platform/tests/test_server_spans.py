"""The SERVER span the pipeline opens for every RPC, seen through a real grpc.aio server."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from opentelemetry import baggage, propagate, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import SpanKind, StatusCode

from medstation_platform import errors
from medstation_platform.auth.keys import CachedJwks
from medstation_platform.auth.tokens import TokenVerifier
from medstation_platform.rpc.runtime import build_pipeline
from medstation_platform.rpc.server import RunningServer, ServiceBinding, start_server
from medstation_platform.rpc.server_spans import ServerSpans

SERVICE = "test.v1.Spans"
QUIET = "test.v1.Quiet"
_KEY = Ed25519PrivateKey.generate()
_tracer = trace.get_tracer(__name__)


class ChartNotFound(errors.NotFound):
    reason = "CHART_NOT_FOUND"


async def _echo(request: bytes, context: object) -> bytes:
    _tracer.start_span("handler work").end()  # work the handler does joins the call's trace
    return request


async def _not_found(request: bytes, context: object) -> bytes:
    raise ChartNotFound("no chart 7")


async def _denied(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not your chart")
    raise AssertionError("abort raises")


async def _bug(request: bytes, context: object) -> bytes:
    raise RuntimeError("a bug")


async def _slow(request: bytes, context: object) -> bytes:
    await asyncio.sleep(30)
    return request


async def _count(request: bytes, context: object) -> AsyncIterator[bytes]:
    for n in range(3):
        yield str(n).encode()


def _register(server: grpc.aio.Server) -> None:
    unary = {
        "Echo": _echo,
        "Private": _echo,
        "NotFound": _not_found,
        "Denied": _denied,
        "Bug": _bug,
        "Slow": _slow,
    }
    handlers = {name: grpc.unary_unary_rpc_method_handler(call) for name, call in unary.items()}
    handlers["Count"] = grpc.unary_stream_rpc_method_handler(_count)
    quiet = {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(SERVICE, handlers),
            grpc.method_handlers_generic_handler(QUIET, quiet),
        )
    )


def _verifier() -> TokenVerifier:
    public = _KEY.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    x = base64.urlsafe_b64encode(public).decode().rstrip("=")

    async def jwks() -> bytes:
        key = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "alg": "EdDSA"}
        return json.dumps({"keys": [key]}).encode()

    return TokenVerifier(CachedJwks(jwks), issuer="medstation", audience="medstation-api")


def _token(user_id: str) -> str:
    now = int(time.time())
    claims = {
        "iss": "medstation", "aud": "medstation-api", "sub": user_id, "role": "clinician",
        "sid": "session-1", "iat": now, "nbf": now, "exp": now + 300,
    }  # fmt: skip
    return jwt.encode(claims, _KEY, algorithm="EdDSA", headers={"kid": "k1"})


async def _start() -> RunningServer:
    public = {f"/{SERVICE}/{name}" for name in ("Echo", "NotFound", "Denied", "Bug", "Slow")}
    pipeline = build_pipeline(
        domain="medstation.test",
        verifier=_verifier(),
        public_methods={*public, f"/{SERVICE}/Count", f"/{QUIET}/Echo"},
    )
    return await start_server(
        host="127.0.0.1", port=0, bindings=[ServiceBinding(SERVICE, _register)],
        interceptors=[pipeline],
    )  # fmt: skip


@pytest.fixture
async def server(recorded_spans: InMemorySpanExporter) -> AsyncIterator[RunningServer]:
    running = await _start()
    recorded_spans.clear()
    yield running
    await running.stop(0)


class Caller:
    """A client of `server` whose calls carry a W3C traceparent of its own."""

    def __init__(self, sampled: bool = True) -> None:
        self.trace_id = secrets.randbits(128)
        self.span_id = secrets.randbits(64)
        self.traceparent = (
            f"00-{self.trace_id:032x}-{self.span_id:016x}-{'01' if sampled else '00'}"
        )

    async def call(
        self,
        running: RunningServer,
        method: str,
        *,
        token: str | None = None,
        deadline_seconds: float = 5,
    ) -> bytes:
        metadata = [("traceparent", self.traceparent)]
        if token is not None:
            metadata.append(("authorization", f"Bearer {token}"))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            response: bytes = await channel.unary_unary(method, None, None)(
                b"hello", metadata=metadata, timeout=deadline_seconds
            )
            return response

    async def fail(self, running: RunningServer, method: str, **options: float) -> grpc.StatusCode:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await self.call(running, method, **options)  # type: ignore[arg-type]
        return failed.value.code()


def _server_spans(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [
        span
        for span in exporter.get_finished_spans()
        if span.kind == SpanKind.SERVER and span.name == name
    ]


async def _one_server_span(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    """The call's span: ended before the response is sent, or soon after a cancellation."""
    async with asyncio.timeout(5):
        while not (spans := _server_spans(exporter, name)):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    [span] = spans
    return span


async def test_a_call_is_one_server_span_named_by_its_method_in_the_callers_trace(
    server: RunningServer, recorded_spans: InMemorySpanExporter
) -> None:
    caller = Caller()

    assert await caller.call(server, f"/{SERVICE}/Echo") == b"hello"

    span = await _one_server_span(recorded_spans, f"/{SERVICE}/Echo")
    assert span.context.trace_id == caller.trace_id
    assert span.parent is not None
    assert (span.parent.span_id, span.parent.is_remote) == (caller.span_id, True)
    assert span.status.status_code is StatusCode.UNSET
    attributes = dict(span.attributes or {})
    assert {key: attributes[key] for key in attributes if key.startswith("rpc.")} == {
        "rpc.system": "grpc",
        "rpc.service": SERVICE,
        "rpc.method": "Echo",
        "rpc.grpc.status_code": 0,
        "rpc.user_agent": attributes["rpc.user_agent"],
    }
    assert str(attributes["rpc.user_agent"]).startswith("grpc-python")
    assert (attributes["net.peer.ip"], attributes["net.peer.name"]) == ("127.0.0.1", "localhost")
    assert str(attributes["net.peer.port"]).isdigit()


async def test_the_handlers_own_spans_are_children_of_the_server_span(
    server: RunningServer, recorded_spans: InMemorySpanExporter
) -> None:
    await Caller().call(server, f"/{SERVICE}/Echo")

    call = await _one_server_span(recorded_spans, f"/{SERVICE}/Echo")
    [work] = [span for span in recorded_spans.get_finished_spans() if span.name == "handler work"]
    assert work.parent is not None
    assert work.parent.span_id == call.context.span_id


async def test_a_call_without_a_traceparent_starts_a_trace_of_its_own(
    server: RunningServer, recorded_spans: InMemorySpanExporter
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        await channel.unary_unary(f"/{SERVICE}/Echo", None, None)(b"x", timeout=5)

    span = await _one_server_span(recorded_spans, f"/{SERVICE}/Echo")
    assert span.parent is None


async def test_a_caller_that_does_not_sample_its_trace_gets_no_server_span(
    server: RunningServer, recorded_spans: InMemorySpanExporter
) -> None:
    assert await Caller(sampled=False).call(server, f"/{SERVICE}/Echo") == b"hello"
    sampled = Caller()
    await sampled.call(server, f"/{SERVICE}/Echo")  # after it: its span is the only one

    span = await _one_server_span(recorded_spans, f"/{SERVICE}/Echo")
    assert span.context.trace_id == sampled.trace_id


@pytest.mark.parametrize(
    ("method", "code", "description"),
    [
        pytest.param("NotFound", grpc.StatusCode.NOT_FOUND, "no chart 7", id="domain-error"),
        pytest.param("Denied", grpc.StatusCode.PERMISSION_DENIED, "not your chart", id="abort"),
        pytest.param("Bug", grpc.StatusCode.INTERNAL, "internal error", id="bug"),
        pytest.param("Private", grpc.StatusCode.UNAUTHENTICATED, "", id="no-token"),
    ],
)
async def test_a_failed_call_is_an_error_span_with_its_status_code(
    server: RunningServer,
    recorded_spans: InMemorySpanExporter,
    method: str,
    code: grpc.StatusCode,
    description: str,
) -> None:
    assert await Caller().fail(server, f"/{SERVICE}/{method}") == code

    span = await _one_server_span(recorded_spans, f"/{SERVICE}/{method}")
    assert span.status.status_code is StatusCode.ERROR
    assert str(span.status.description).startswith(f"{code}:{description}")
    assert dict(span.attributes or {})["rpc.grpc.status_code"] == code.value[0]


async def test_a_bug_is_recorded_on_its_span_as_an_exception(
    server: RunningServer, recorded_spans: InMemorySpanExporter
) -> None:
    await Caller().fail(server, f"/{SERVICE}/Bug")

    span = await _one_server_span(recorded_spans, f"/{SERVICE}/Bug")
    [event] = span.events
    assert event.name == "exception"
    assert dict(event.attributes or {})["exception.type"] == "RuntimeError"


async def test_a_call_cut_off_by_its_deadline_is_a_cancelled_span(
    server: RunningServer, recorded_spans: InMemorySpanExporter
) -> None:
    code = await Caller().fail(server, f"/{SERVICE}/Slow", deadline_seconds=0.2)

    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    span = await _one_server_span(recorded_spans, f"/{SERVICE}/Slow")
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0]


async def test_a_streaming_call_is_one_span_that_ends_with_the_stream(
    server: RunningServer, recorded_spans: InMemorySpanExporter
) -> None:
    caller = Caller()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stream = channel.unary_stream(f"/{SERVICE}/Count", None, None)(
            b"x", metadata=[("traceparent", caller.traceparent)], timeout=5
        )
        responses = [response async for response in stream]

    assert responses == [b"0", b"1", b"2"]
    span = await _one_server_span(recorded_spans, f"/{SERVICE}/Count")
    assert span.context.trace_id == caller.trace_id
    assert span.status.status_code is StatusCode.UNSET


async def test_an_authenticated_call_names_its_user_on_the_span(
    server: RunningServer, recorded_spans: InMemorySpanExporter
) -> None:
    await Caller().call(server, f"/{SERVICE}/Private", token=_token("user-42"))

    span = await _one_server_span(recorded_spans, f"/{SERVICE}/Private")
    assert dict(span.attributes or {})["enduser.id"] == "user-42"


async def test_every_call_to_a_method_gets_its_own_span_and_its_own_rules(
    server: RunningServer, recorded_spans: InMemorySpanExporter
) -> None:
    # Each method's handler is wrapped once and reused: what it wraps must stay that
    # method's own (its name, its authentication), call after call.
    caller = Caller()
    outcomes: list[object] = []
    for method in ("Echo", "Private", "Echo", "Private", "NotFound", "Echo"):
        try:
            outcomes.append(await caller.call(server, f"/{SERVICE}/{method}"))
        except grpc.aio.AioRpcError as error:
            outcomes.append(error.code())

    assert outcomes == [
        b"hello",
        grpc.StatusCode.UNAUTHENTICATED,
        b"hello",
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.NOT_FOUND,
        b"hello",
    ]
    echoes = _server_spans(recorded_spans, f"/{SERVICE}/Echo")
    assert len({span.context.span_id for span in echoes}) == 3
    assert len(_server_spans(recorded_spans, f"/{SERVICE}/Private")) == 2
    assert len(_server_spans(recorded_spans, f"/{SERVICE}/NotFound")) == 1


async def test_a_service_excluded_by_the_operator_is_served_untraced(
    monkeypatch: pytest.MonkeyPatch, recorded_spans: InMemorySpanExporter
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_GRPC_EXCLUDED_SERVICES", f"other.v1.Noisy, {QUIET}")
    running = await _start()
    recorded_spans.clear()
    try:
        assert await Caller().call(running, f"/{QUIET}/Echo") == b"hello"
        await Caller().call(running, f"/{SERVICE}/Echo")
    finally:
        await running.stop(0)

    await _one_server_span(recorded_spans, f"/{SERVICE}/Echo")
    assert _server_spans(recorded_spans, f"/{QUIET}/Echo") == []


class PeerNeverAsked:
    """A servicer context whose peer must not be looked up (it costs, and goes unused)."""

    def peer(self) -> str:
        raise AssertionError("the peer of an unrecorded call was looked up")


def test_an_unrecorded_span_neither_describes_its_caller_nor_loses_its_trace() -> None:
    caller = Caller(sampled=False)
    spans = ServerSpans(f"/{SERVICE}/Echo")

    with spans.span({"traceparent": caller.traceparent}, PeerNeverAsked()) as span:
        current = trace.get_current_span()

    assert not span.is_recording()
    assert current is span  # the call's code runs with it, and passes its trace on
    assert span.get_span_context().trace_id == caller.trace_id


def _provider(sampler: Sampler) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


_TRACE = "0af7651916cd43dd8448eb211c80319c"
_PARENT = "b7ad6b7169203331"


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param({"traceparent": f"00-{_TRACE}-{_PARENT}-00"}, id="unsampled"),
        pytest.param(
            {"traceparent": f"00-{_TRACE}-{_PARENT}-00", "tracestate": "vendor=a,other=b"},
            id="with-trace-state",
        ),
        pytest.param(
            {"traceparent": f"00-{_TRACE}-{_PARENT}-00", "tracestate": ""}, id="empty-state"
        ),
        pytest.param({"traceparent": f" 00-{_TRACE}-{_PARENT}-00\t"}, id="padded"),
        pytest.param({"traceparent": f"00-{_TRACE}-{_PARENT}-02"}, id="other-flags"),
        pytest.param({"traceparent": f"00-{_TRACE}-{_PARENT}-01"}, id="sampled"),
        pytest.param({"traceparent": f"00-{_TRACE.upper()}-{_PARENT}-00"}, id="upper-case"),
        pytest.param({"traceparent": f"00-{'0' * 32}-{_PARENT}-00"}, id="zero-trace-id"),
        pytest.param({"traceparent": f"00-{_TRACE}-{'0' * 16}-00"}, id="zero-parent-id"),
        pytest.param({"traceparent": f"00-{_TRACE}-{_PARENT}-00-extra"}, id="v00-with-suffix"),
        pytest.param({"traceparent": f"01-{_TRACE}-{_PARENT}-00-later"}, id="later-version"),
        pytest.param({"traceparent": f"ff-{_TRACE}-{_PARENT}-00"}, id="invalid-version"),
        pytest.param({"traceparent": "garbage"}, id="garbage"),
        pytest.param(
            {"traceparent": f"00-{_TRACE}-{_PARENT}-00", "baggage": "tenant=7"}, id="baggage"
        ),
        pytest.param({}, id="no-traceparent"),
    ],
)
@pytest.mark.parametrize(
    "sampler",
    [
        # Production's sampler; a ratio of 1 so that new traces (invalid parents) are
        # sampled the same way by both, not by chance.
        pytest.param(ParentBasedTraceIdRatio(1.0), id="parent-based-ratio"),
        pytest.param(ParentBased(ALWAYS_ON), id="parent-based-always-on"),
        pytest.param(ALWAYS_ON, id="always-on"),
        pytest.param(ParentBased(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON), id="keeps-all"),
    ],
)
def test_a_calls_span_is_what_the_sdk_would_make_of_its_headers(
    metadata: dict[str, str], sampler: Sampler
) -> None:
    # The pipeline's own way for unsampled callers must agree with the propagator and the
    # SDK's sampler on every input; where it does not apply, it must step aside.
    provider, exporter = _provider(sampler)
    spans = ServerSpans(f"/{SERVICE}/Echo", tracer_provider=provider)
    parent = propagate.extract(metadata)
    expected = provider.get_tracer("reference").start_span("x", context=parent)
    recorded = expected.is_recording()
    expected.end()

    with spans.span(metadata, _Peer() if recorded else PeerNeverAsked()) as span:
        current = trace.get_current_span()
        recording = span.is_recording()
        current_baggage = dict(baggage.get_all())

    ours, theirs = span.get_span_context(), expected.get_span_context()
    assert current is span
    assert recording == recorded
    if trace.get_current_span(parent).get_span_context().is_valid:
        assert ours.trace_id == theirs.trace_id  # the caller's trace
    assert ours.trace_flags == theirs.trace_flags
    assert ours.trace_state == theirs.trace_state
    assert ours.is_remote is theirs.is_remote is False
    assert ours.span_id != trace.get_current_span(parent).get_span_context().span_id
    assert current_baggage == dict(baggage.get_all(parent))
    assert len(exporter.get_finished_spans()) == 2 * recorded


class _Peer:
    def peer(self) -> str:
        return "ipv4:127.0.0.1:5000"


class _CountingParentBased(ParentBased):
    """Production's kind of sampler, counting the calls it is asked to decide."""

    def __init__(self) -> None:
        super().__init__(ALWAYS_ON)
        self.decided = 0

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        self.decided += 1
        return super().should_sample(*args, **kwargs)


def test_an_unsampled_callers_span_is_made_without_asking_the_sampler() -> None:
    # The test above holds whichever way a span is made; this one shows the short way is
    # the one taken (it is why it exists: the propagator and sampler cost 12 µs a call).
    sampler = _CountingParentBased()
    provider, _ = _provider(sampler)
    spans = ServerSpans(f"/{SERVICE}/Echo", tracer_provider=provider)

    with spans.span({"traceparent": f"00-{_TRACE}-{_PARENT}-00"}, PeerNeverAsked()):
        pass
    assert sampler.decided == 0
    with spans.span({"traceparent": f"00-{_TRACE}-{_PARENT}-01"}, _Peer()):
        pass
    assert sampler.decided == 1  # a sampled caller's span is the sampler's to decide
