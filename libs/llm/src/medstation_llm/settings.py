"""Where each provider lives and how long to wait for it (MEDSTATION_* environment variables).

Services hold these as a section of their own settings (`llm: LlmSettings`), read from
the same unprefixed variables. A remote provider counts as configured when its endpoint
(Ollama) or its API key (OpenAI, Anthropic) is set.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from medstation_platform.secret import Secret
from medstation_platform.settings import Settings

HttpUrl = Annotated[str, msgspec.Meta(pattern=r"^https?://")]


class LlmSettings(Settings, frozen=True, kw_only=True):
    # The whole budget of one model call, retries included; a caller's shorter deadline wins.
    llm_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=600)] = 60.0
    # Attempts on 429 and 5xx answers and on connection failures, the first included.
    llm_max_attempts: Annotated[int, msgspec.Meta(ge=1, le=10)] = 3
    # First backoff; doubles each retry, with jitter, honouring Retry-After when sent.
    llm_backoff_seconds: Annotated[float, msgspec.Meta(ge=0, le=30)] = 0.5
    ollama_base_url: HttpUrl | None = None
    openai_base_url: HttpUrl = "https://api.openai.com/v1"
    openai_api_key: Secret | None = None
    anthropic_base_url: HttpUrl = "https://api.anthropic.com"
    anthropic_api_key: Secret | None = None
