"""How long a model call may take and how often it is tried: the remote adapters' budget."""

from __future__ import annotations

from dataclasses import dataclass

from medstation_llm.settings import LlmSettings


@dataclass(frozen=True)
class RetryPolicy:
    timeout_seconds: float  # the longest any call may take; a request may ask for less
    max_attempts: int
    backoff_seconds: float

    @classmethod
    def from_settings(cls, settings: LlmSettings) -> RetryPolicy:
        return cls(
            settings.llm_timeout_seconds, settings.llm_max_attempts, settings.llm_backoff_seconds
        )
