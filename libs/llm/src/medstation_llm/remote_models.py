"""The remote adapters, built on their HTTP client.

Kept apart from the registry so that a process using only the offline models never
imports httpx: about 8 MB of resident memory per process, tracing included.
"""

from __future__ import annotations

import httpx

from medstation_llm.anthropic_model import AnthropicLanguageModel
from medstation_llm.http_transport import HttpTransport
from medstation_llm.model import LanguageModel
from medstation_llm.ollama_model import OllamaLanguageModel
from medstation_llm.openai_model import OpenAiLanguageModel
from medstation_llm.providers import ANTHROPIC, OPENAI
from medstation_llm.retry_policy import RetryPolicy
from medstation_platform.telemetry import instrument_http_client

# Per provider: concurrent calls are bounded by the services' own concurrency anyway.
_CONNECTION_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=8)


def remote_language_model(
    provider: str, base_url: str, key: str, policy: RetryPolicy
) -> LanguageModel:
    """The adapter for `provider` with a pooled, traced client of its own."""
    transport = HttpTransport(provider, _client(base_url), policy)
    if provider == OPENAI:
        return OpenAiLanguageModel(transport, key)
    if provider == ANTHROPIC:
        return AnthropicLanguageModel(transport, key)
    return OllamaLanguageModel(transport)


def _client(base_url: str) -> httpx.AsyncClient:
    # Each call sets its own timeout from its budget; this default only guards misuse.
    client = httpx.AsyncClient(base_url=base_url, timeout=60.0, limits=_CONNECTION_LIMITS)
    instrument_http_client(client)
    return client
