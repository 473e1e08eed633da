"""Where each provider lives and how long to wait for it (MEDSTATION_* environment variables).

Services mix these fields into their own settings class. A remote provider counts as
configured when its endpoint (Ollama) or its API key (OpenAI, Anthropic) is set.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class LlmSettings(BaseModel):
    # The whole budget of one model call, retries included; a caller's shorter deadline wins.
    llm_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    # Attempts on 429 and 5xx answers and on connection failures, the first included.
    llm_max_attempts: int = Field(default=3, ge=1, le=10)
    # First backoff; doubles each retry, with jitter, honouring Retry-After when sent.
    llm_backoff_seconds: float = Field(default=0.5, ge=0, le=30)
    ollama_base_url: str | None = Field(default=None, pattern=r"^https?://")
    openai_base_url: str = Field(default="https://api.openai.com/v1", pattern=r"^https?://")
    openai_api_key: SecretStr | None = None
    anthropic_base_url: str = Field(default="https://api.anthropic.com", pattern=r"^https?://")
    anthropic_api_key: SecretStr | None = None
