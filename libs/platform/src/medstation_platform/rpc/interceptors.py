"""The server-side pipeline every RPC passes through: authenticate, validate, handle,
map errors, measure, log. Health checks and reflection bypass it."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import grpc
from google.protobuf.message import Message
from opentelemetry.trace import Span, TracerProvider

from medstation_platform import errors
from medstation_platform.auth.principal import (
    Principal,
    reset_current_principal,
    set_current_principal,
)
from medstation_platform.auth.tokens import TokenVerifier, bearer_token
from medstation_platform.logs import reset_current_rpc, set_current_rpc
from medstation_platform.metrics import RpcMetrics
from medstation_platform.rpc.server_spans import ServerSpans, record_status
from medstation_platform.rpc.status import internal_status, status_code_for, to_grpc_status
from medstation_platform.validation import RequestValidator

logger = logging.getLogger(__name__)

# grpc's classes are generic only in their type stubs: subscripting them at run time fails.
if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    Context = grpc.aio.ServicerContext
    Handler = grpc.RpcMethodHandler
    _ServerInterceptor = grpc.aio.ServerInterceptor
# What a generated servicer method is: (request, context) -> awaitable or async iterator.
Behaviour = Callable[..., Any]

_INFRASTRUCTURE_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")

# Absolute deadline (time.monotonic) of the RPC being served; outgoing calls derive
# their timeout from it so no downstream call outlives its caller.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "medstation_deadline", default=None
)


def remaining_seconds() -> float | None:
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


@dataclass(frozen=True)
class PipelineConfig:
    domain: str
    verifier: TokenVerifier
    public_methods: Collection[str]
    validator: RequestValidator
    metrics: RpcMetrics | None = None
    # Services an operator excluded from tracing (OTEL_PYTHON_GRPC_EXCLUDED_SERVICES).
    untraced_services: Collection[str] = frozenset()
    # None: the global one, which configure_tracing installs.
    tracer_provider: TracerProvider | None = None


class ServerPipeline(_ServerInterceptor):
    def __init__(self, config: PipelineConfig) -> None:
        self._config = config
        # Each method's handler, wrapped once: wrapping costs more than a cheap call.
        self._wrapped: dict[str, Handler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        method: str = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        # None for a method nobody serves: gRPC itself answers UNIMPLEMENTED.
        handler = cast("Handler | None", await continuation(handler_call_details))
        if handler is None or method.startswith(_INFRASTRUCTURE_PREFIXES):
            return handler  # type: ignore[return-value]
        wrapped = _wrap(handler, _Call(self._config, method))
        self._wrapped[method] = wrapped
        return wrapped


def _wrap(handler: Handler, call: _Call) -> Handler:
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            call.wrap_unary(handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            call.wrap_stream(handler.unary_stream),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler  # client streaming is not part of our API


class _Call:
    """What the pipeline does around one method's behaviour."""

    def __init__(self, config: PipelineConfig, method: str) -> None:
        self.config = config
        self.method = method
        self._public = method in config.public_methods
        service = method.lstrip("/").partition("/")[0]
        self.spans = ServerSpans(
            method,
            traced=service not in config.untraced_services,
            tracer_provider=config.tracer_provider,
        )
        self.metrics = None if config.metrics is None else config.metrics.for_method(method)

    def wrap_unary(self, behaviour: Behaviour) -> Behaviour:
        async def unary(request: Message, context: Context) -> Message:
            metadata = _metadata(context)
            with self.spans.span(metadata, context) as span:
                async with _CallScope(self, context, span) as scope:
                    await scope.admit(request, metadata)
                    response: Message = await behaviour(request, context)
                    return response
            raise AssertionError("unreachable: the scope aborts on error")

        return unary

    def wrap_stream(self, behaviour: Behaviour) -> Behaviour:
        async def stream(request: Message, context: Context) -> AsyncIterator[Message]:
            metadata = _metadata(context)
            with self.spans.span(metadata, context) as span:
                async with _CallScope(self, context, span) as scope:
                    await scope.admit(request, metadata)
                    result = behaviour(request, context)
                    if hasattr(result, "__aiter__"):
                        async for response in result:
                            yield response
                    else:  # a write()-style handler
                        await result

        return stream

    async def authenticate(self, metadata: dict[str, str | bytes]) -> Principal | None:
        if self._public:
            return None
        authorization = metadata.get("authorization")
        token = bearer_token(authorization if isinstance(authorization, str) else None)
        return await self.config.verifier.verify(token)


def _metadata(context: Context) -> dict[str, str | bytes]:
    return dict(context.invocation_metadata() or ())


class _CallScope:
    def __init__(self, call: _Call, context: Context, span: Span) -> None:
        self._call = call
        self._context = context
        self._span = span
        self._started = time.perf_counter()
        self._tokens: list[Callable[[], None]] = []

    async def __aenter__(self) -> _CallScope:
        rpc_token = set_current_rpc(self._call.method)
        self._tokens.append(lambda: reset_current_rpc(rpc_token))
        # None when the client set no deadline (the stubs say float; the runtime disagrees).
        remaining = cast(float | None, self._context.time_remaining())
        deadline_token = _deadline.set(None if remaining is None else time.monotonic() + remaining)
        self._tokens.append(lambda: _deadline.reset(deadline_token))
        return self

    async def admit(self, request: Message, metadata: dict[str, str | bytes]) -> None:
        principal = await self._call.authenticate(metadata)
        principal_token = set_current_principal(principal)
        self._tokens.append(lambda: reset_current_principal(principal_token))
        if principal is not None and self._span.is_recording():
            self._span.set_attribute("enduser.id", principal.user_id)
        self._call.config.validator.check(request)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, _tb: object
    ) -> bool:
        try:
            if exc is None:
                self._record("OK")
                return False
            return await self._handle(exc)
        finally:
            for reset in reversed(self._tokens):
                reset()

    async def _handle(self, exc: BaseException) -> bool:
        config = self._call.config
        if isinstance(exc, errors.DomainError):
            code = status_code_for(exc)
            self._record(code.name, reason=exc.reason)
            status = to_grpc_status(exc, domain=config.domain)
        elif isinstance(exc, grpc.aio.AbortError):
            # The handler aborted with a status of its own choosing: record that status.
            aborted = self._context.code()
            self._record(getattr(aborted, "name", "UNKNOWN"))
            if isinstance(aborted, grpc.StatusCode):
                record_status(self._span, aborted, self._context.details() or "")
            return False
        elif isinstance(exc, asyncio.CancelledError | GeneratorExit):
            self._record("CANCELLED")  # the client went away or its deadline passed
            record_status(self._span, grpc.StatusCode.CANCELLED, "cancelled")
            return False
        elif isinstance(exc, Exception):
            logger.error("unhandled error", exc_info=exc, extra={"grpc_code": "INTERNAL"})
            self._record("INTERNAL")
            if self._span.is_recording():
                self._span.record_exception(exc)
            status = internal_status(domain=config.domain)
        else:
            return False
        record_status(self._span, status.code, status.details)
        await self._context.abort(status.code, status.details, status.trailing_metadata)

    def _record(self, code: str, reason: str | None = None) -> None:
        elapsed = time.perf_counter() - self._started
        metrics = self._call.metrics
        if metrics is not None:
            metrics.observe(code, elapsed)
        # Successful calls at DEBUG: a line per call cost a tenth of a cheap RPC's CPU, the
        # metrics count them, and the gateway's access log has each request with its trace
        # id. Every failure is still logged (MEDSTATION_LOG_LEVEL=DEBUG logs them all).
        level = logging.DEBUG if code == "OK" else logging.INFO
        if not logger.isEnabledFor(level):
            return
        extra: dict[str, object] = {"grpc_code": code, "duration_ms": round(elapsed * 1000, 2)}
        if reason:
            extra["reason"] = reason
        logger.log(level, "rpc finished", extra=extra)
