"""One model call over HTTP: the budget, the retries, and what a failure becomes.

Every remote adapter sends through here, so all of them share one behaviour:

- the whole call, retries and backoff included, fits in min(request, settings) seconds;
- 408, 409, 429 and 5xx answers (529 too) and connection failures are retried, at most
  `llm_max_attempts` times, after an exponential backoff with jitter, or after the
  server's `Retry-After` when it fits in what is left of the budget;
- a stream is retried only before its body starts: a reply cut off midway is not resent;
- other 4xx answers are the provider refusing us (bad key, unknown model): never retried.

Errors name the provider and the HTTP status, never the URL, the key or the body; the
provider's own error message is logged at WARNING (it never contains the prompt).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from medstation_llm.errors import ModelRejected, ModelTimeout, ModelUnavailable
from medstation_llm.retry_policy import RetryPolicy

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
_LOGGED_DETAIL_CHARS = 300


class HttpTransport:
    """POSTs JSON to one provider through a shared, pooled `httpx.AsyncClient`."""

    def __init__(
        self,
        provider: str,
        client: httpx.AsyncClient,
        policy: RetryPolicy,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.provider = provider
        self._client = client
        self._policy = policy
        self._rng = rng or random.Random()  # noqa: S311 -- jitter, not a secret

    async def post_json(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        headers: Mapping[str, str],
        budget_seconds: float,
    ) -> dict[str, Any]:
        """The provider's JSON object answer to a 2xx, after retries."""
        deadline = self._deadline(budget_seconds)
        response = await self._send(path, body, headers, deadline, stream=False)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise self.malformed()
        return answer

    async def post_stream(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        headers: Mapping[str, str],
        budget_seconds: float,
    ) -> AsyncGenerator[str, None]:
        """The lines of a 2xx answer's body as they arrive, within the same budget."""
        deadline = self._deadline(budget_seconds)
        response = await self._send(path, body, headers, deadline, stream=True)
        lines = response.aiter_lines()
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline.at):
                        line = await anext(lines, None)
                except (TimeoutError, httpx.TimeoutException) as error:
                    raise self._timeout(deadline) from error
                except httpx.TransportError as error:
                    logger.warning("%s stream broke off: %s", self.provider, type(error).__name__)
                    raise ModelUnavailable(
                        f"{self.provider} stopped answering midway; retry later",
                        metadata={"provider": self.provider},
                    ) from error
                if line is None:
                    return
                yield line
        finally:
            await response.aclose()

    def malformed(self) -> ModelUnavailable:
        """The error for a 2xx answer whose body is not what this provider sends."""
        logger.warning("%s sent a response this adapter cannot read", self.provider)
        return ModelUnavailable(
            f"{self.provider} sent a response that could not be read",
            metadata={"provider": self.provider},
        )

    def provider_error(self, detail: str) -> ModelUnavailable:
        """The error for a failure the provider reports inside a 2xx stream."""
        logger.warning("%s reported an error midway: %s", self.provider, _clip(detail))
        return ModelUnavailable(
            f"{self.provider} failed while answering; retry later",
            metadata={"provider": self.provider},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _deadline(self, requested: float) -> _Deadline:
        budget = min(requested, self._policy.timeout_seconds)
        deadline = _Deadline(asyncio.get_running_loop().time() + budget, budget)
        if budget <= 0:
            raise self._timeout(deadline)
        return deadline

    async def _send(
        self,
        path: str,
        body: Mapping[str, Any],
        headers: Mapping[str, str],
        deadline: _Deadline,
        *,
        stream: bool,
    ) -> httpx.Response:
        """The first 2xx answer (its body unread when streaming), else the mapped error."""
        loop = asyncio.get_running_loop()
        failure = _Failure("was not called")
        attempt = 0
        while attempt < self._policy.max_attempts:
            attempt += 1
            try:
                async with asyncio.timeout_at(deadline.at):
                    request = self._client.build_request(
                        "POST", path, json=body, headers=headers, timeout=deadline.at - loop.time()
                    )
                    response = await self._client.send(request, stream=stream)
                    if response.is_success:
                        return response
                    await response.aread()
                    await response.aclose()
            except (TimeoutError, httpx.TimeoutException) as error:
                raise self._timeout(deadline) from error
            except httpx.TransportError as error:
                logger.warning("%s connection failed: %s", self.provider, type(error).__name__)
                failure = _Failure(f"could not be reached ({type(error).__name__})")
            else:
                failure = self._refusal(response)
            delay = self._backoff(attempt) if failure.retry_after is None else failure.retry_after
            if loop.time() + delay >= deadline.at:
                break  # the server asks for more time than the caller has: fail now
            if attempt < self._policy.max_attempts:
                await asyncio.sleep(delay)
        raise failure.unavailable(self.provider, attempt)

    def _refusal(self, response: httpx.Response) -> _Failure:
        """A non-2xx answer: logged, then ModelRejected, or a failure worth a retry."""
        status = response.status_code
        logger.warning("%s answered HTTP %d: %s", self.provider, status, _error_detail(response))
        if status not in RETRYABLE_STATUSES:
            raise ModelRejected(
                f"{self.provider} rejected the request (HTTP {status}); "
                "check the configured model name and API key",
                metadata={"provider": self.provider, "http_status": str(status)},
            )
        return _Failure(f"answered HTTP {status}", status, _retry_after_seconds(response.headers))

    def _backoff(self, attempt: int) -> float:
        base = self._policy.backoff_seconds * 2.0 ** (attempt - 1)
        return base * self._rng.uniform(0.5, 1.0)

    def _timeout(self, deadline: _Deadline) -> ModelTimeout:
        return ModelTimeout(
            f"{self.provider} did not answer within {deadline.budget:g} s",
            metadata={"provider": self.provider},
        )


@dataclass(frozen=True)
class _Deadline:
    at: float  # on the event loop's clock
    budget: float  # seconds, as granted when the call started


@dataclass(frozen=True)
class _Failure:
    """Why the last attempt failed, and how long the server asked us to wait."""

    description: str
    status: int | None = None
    retry_after: float | None = None

    def unavailable(self, provider: str, attempts: int) -> ModelUnavailable:
        metadata = {"provider": provider, "attempts": str(attempts)}
        if self.status is not None:
            metadata["http_status"] = str(self.status)
        plural = "s" if attempts > 1 else ""
        return ModelUnavailable(
            f"{provider} {self.description} after {attempts} attempt{plural}; retry later",
            metadata=metadata,
        )


def _retry_after_seconds(headers: httpx.Headers) -> float | None:
    """`retry-after-ms` (OpenAI), else `Retry-After` in seconds or as an HTTP date."""
    milliseconds = headers.get("retry-after-ms")
    value = headers.get("retry-after")
    try:
        if milliseconds is not None:
            return max(float(milliseconds) / 1000, 0.0)
        if value is None:
            return None
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        wait = parsedate_to_datetime(value or "") - datetime.now(UTC)
    except (TypeError, ValueError):  # not a date, or one without a time zone
        return None
    return max(wait.total_seconds(), 0.0)


def _error_detail(response: httpx.Response) -> str:
    """The provider's error type and message, whichever of the three shapes it used."""
    try:
        answer = json.loads(response.content)
    except ValueError:
        return f"({len(response.content)} bytes, not JSON)"
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict):
        kind = error.get("type") or error.get("code") or "error"
        return _clip(f"{kind}: {error.get('message', '')}")
    if isinstance(error, str):
        return _clip(error)
    return "(no error message)"


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _LOGGED_DETAIL_CHARS else text[:_LOGGED_DETAIL_CHARS] + "…"
