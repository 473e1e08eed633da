"""Prometheus metrics of language-model calls: how long each took, and why one failed.

`ModelRegistry(settings, registry)` wraps every model it hands out, so each call is
measured once, whichever service makes it, streams included (until their last event):

- `medstation_llm_request_seconds{provider, outcome}`: outcome `ok`, `timeout`,
  `unavailable`, `rejected`, `cancelled` (the caller stopped waiting) or `error`
  (anything else: a bug);
- `medstation_llm_errors_total{provider, reason}`: failed calls by the error's stable
  reason (`MODEL_TIMEOUT`, `MODEL_UNAVAILABLE`, `MODEL_REJECTED`... or `INTERNAL`).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from medstation_llm.errors import ModelRejected, ModelTimeout, ModelUnavailable
from medstation_llm.model import LanguageModel, Summarizer
from medstation_llm.types import ChatRequest, Completion, PatientChart, StreamEvent
from medstation_platform.errors import DomainError

# From milliseconds (offline) to minutes (a long remote reply).
_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
_OUTCOMES: tuple[tuple[type[DomainError], str], ...] = (
    (ModelTimeout, "timeout"),
    (ModelRejected, "rejected"),
    (ModelUnavailable, "unavailable"),
)


@dataclass(frozen=True)
class LlmMetrics:
    seconds: Histogram
    errors: Counter

    @contextmanager
    def measure(self, provider: str) -> Iterator[None]:
        """Observe how long the block took under `provider`, and how it ended."""
        started = time.perf_counter()
        try:
            yield
        except BaseException as error:
            outcome, reason = classify(error)
            self.seconds.labels(provider, outcome).observe(time.perf_counter() - started)
            if reason:
                self.errors.labels(provider, reason).inc()
            raise
        self.seconds.labels(provider, "ok").observe(time.perf_counter() - started)


def classify(error: BaseException) -> tuple[str, str]:
    """(outcome, error reason) of a call that raised `error`; reason "" when no fault."""
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return "cancelled", ""  # the caller went away, or stopped reading a stream
    for kind, outcome in _OUTCOMES:
        if isinstance(error, kind):
            return outcome, kind.reason
    if isinstance(error, DomainError):
        return "error", error.reason
    return "error", "INTERNAL"


# One set of collectors per registry: prometheus_client refuses a metric name twice.
_metrics_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, LlmMetrics] = (
    weakref.WeakKeyDictionary()
)


def llm_metrics(registry: CollectorRegistry) -> LlmMetrics:
    metrics = _metrics_by_registry.get(registry)
    if metrics is None:
        metrics = _metrics_by_registry[registry] = LlmMetrics(
            seconds=Histogram(
                "medstation_llm_request_seconds",
                "Language-model calls (a whole stream counts as one), by provider and outcome.",
                ["provider", "outcome"],
                buckets=_BUCKETS,
                registry=registry,
            ),
            errors=Counter(
                "medstation_llm_errors_total",
                "Failed language-model calls, by provider and the error's reason.",
                ["provider", "reason"],
                registry=registry,
            ),
        )
    return metrics


class MeasuredLanguageModel:
    """A LanguageModel whose every call is measured."""

    def __init__(self, model: LanguageModel, metrics: LlmMetrics) -> None:
        self.wrapped = model
        self._metrics = metrics

    @property
    def provider(self) -> str:
        return self.wrapped.provider

    async def complete(self, request: ChatRequest) -> Completion:
        with self._metrics.measure(self.provider):
            return await self.wrapped.complete(request)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        events = self.wrapped.stream(request)
        try:
            with self._metrics.measure(self.provider):
                async for event in events:
                    yield event
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    async def aclose(self) -> None:
        await self.wrapped.aclose()


class MeasuredSummarizer:
    """A Summarizer whose every call is measured (for those not built on a LanguageModel)."""

    def __init__(self, summarizer: Summarizer, metrics: LlmMetrics) -> None:
        self.wrapped = summarizer
        self._metrics = metrics

    @property
    def provider(self) -> str:
        return self.wrapped.provider

    @property
    def model(self) -> str:
        return self.wrapped.model

    async def summarize(self, chart: PatientChart, *, timeout_seconds: float) -> Completion:
        with self._metrics.measure(self.provider):
            return await self.wrapped.summarize(chart, timeout_seconds=timeout_seconds)

    async def aclose(self) -> None:
        await self.wrapped.aclose()
