"""A remote reply turned into a Completion, counting tokens the provider did not report."""

from __future__ import annotations

import time

from medstation_llm.prompts import system_prompt
from medstation_llm.token_estimate import estimate_tokens
from medstation_llm.types import ChatRequest, Completion


def completion(
    provider: str,
    request: ChatRequest,
    text: str,
    *,
    started: float,
    input_tokens: object,
    output_tokens: object,
    finish_reason: object,
) -> Completion:
    """`started` is a `time.perf_counter()` reading; counts that are not ints are estimated."""
    if not isinstance(input_tokens, int):
        input_tokens = estimate_tokens(
            system_prompt(request), (turn.content for turn in request.messages)
        )
    if not isinstance(output_tokens, int):
        output_tokens = estimate_tokens(text)
    return Completion(
        text=text,
        provider=provider,
        model=request.model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        latency_ms=round((time.perf_counter() - started) * 1000),
        finish_reason=finish_reason if isinstance(finish_reason, str) else "stop",
    )
