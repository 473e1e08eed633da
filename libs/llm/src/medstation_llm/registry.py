"""Provider name → the object that talks to it, built once per process from settings."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from medstation_llm.errors import ModelNotConfigured
from medstation_llm.metrics import (
    LlmMetrics,
    MeasuredLanguageModel,
    MeasuredSummarizer,
    llm_metrics,
)
from medstation_llm.model import LanguageModel, Summarizer
from medstation_llm.offline_chat import OfflineLanguageModel
from medstation_llm.offline_summary import OfflineSummarizer
from medstation_llm.prompted_summary import PromptedSummarizer
from medstation_llm.providers import (
    ANTHROPIC,
    OFFLINE,
    OFFLINE_MODEL,
    OLLAMA,
    OPENAI,
    PROVIDERS,
)
from medstation_llm.retry_policy import RetryPolicy
from medstation_llm.settings import LlmSettings
from medstation_platform.secret import Secret

__all__ = [
    "ANTHROPIC",
    "OFFLINE",
    "OFFLINE_MODEL",
    "OLLAMA",
    "OPENAI",
    "PROVIDERS",
    "ModelRegistry",
]

# The environment variable that turns each remote provider on.
CONFIGURED_BY = {
    OLLAMA: "MEDSTATION_OLLAMA_BASE_URL",
    OPENAI: "MEDSTATION_OPENAI_API_KEY",
    ANTHROPIC: "MEDSTATION_ANTHROPIC_API_KEY",
}


class ModelRegistry:
    """The language models this process may use; `offline` is always there.

    Remote clients are built on first use, one pooled `httpx.AsyncClient` per provider,
    shared by every chat and summary call to it, and closed by `aclose`. With a
    `registry`, every call is measured there (see `medstation_llm.metrics`).
    """

    def __init__(self, settings: LlmSettings, registry: CollectorRegistry | None = None) -> None:
        self._settings = settings
        self._policy = RetryPolicy.from_settings(settings)
        self._metrics: LlmMetrics | None = None if registry is None else llm_metrics(registry)
        self._models: dict[str, LanguageModel] = {OFFLINE: self._measured(OfflineLanguageModel())}
        self._offline_summarizer: Summarizer = OfflineSummarizer()
        if self._metrics is not None:
            self._offline_summarizer = MeasuredSummarizer(self._offline_summarizer, self._metrics)

    def configured_providers(self) -> tuple[str, ...]:
        """Provider names usable in this deployment, `offline` first."""
        return tuple(provider for provider in PROVIDERS if self._endpoint(provider) is not None)

    def language_model(self, provider: str) -> LanguageModel:
        """The chat model client for `provider`; ModelNotConfigured when it has no endpoint."""
        model = self._models.get(provider)
        if model is None:
            model = self._models[provider] = self._measured(self._build(provider))
        return model

    def summarizer(self, provider: str, model: str) -> Summarizer:
        """The offline SOAP summarizer, or a prompted summary from a remote `model`."""
        if provider == OFFLINE:
            return self._offline_summarizer
        # Measured through its language model: one observation per call, not two.
        return PromptedSummarizer(self.language_model(provider), model)

    async def aclose(self) -> None:
        models, self._models = self._models, {OFFLINE: self._measured(OfflineLanguageModel())}
        for model in models.values():
            await model.aclose()

    def _measured(self, model: LanguageModel) -> LanguageModel:
        return model if self._metrics is None else MeasuredLanguageModel(model, self._metrics)

    def _build(self, provider: str) -> LanguageModel:
        endpoint = self._endpoint(provider)
        if endpoint is None:
            raise ModelNotConfigured(
                self._not_configured(provider), metadata={"provider": provider}
            )
        # Imported on first use: a process serving only the offline models never loads
        # httpx (see remote_models).
        from medstation_llm.remote_models import remote_language_model

        base_url, key = endpoint
        return remote_language_model(provider, base_url, key, self._policy)

    def _endpoint(self, provider: str) -> tuple[str, str] | None:
        """(base URL, API key) when `provider` is configured; Ollama needs no key."""
        settings = self._settings
        if provider == OFFLINE:
            return ("", "")
        if provider == OLLAMA and settings.ollama_base_url:
            return (settings.ollama_base_url, "")
        if provider == OPENAI and (key := _secret(settings.openai_api_key)):
            return (settings.openai_base_url, key)
        if provider == ANTHROPIC and (key := _secret(settings.anthropic_api_key)):
            return (settings.anthropic_base_url, key)
        return None

    def _not_configured(self, provider: str) -> str:
        if provider in CONFIGURED_BY:
            return (
                f"the language model provider {provider!r} is not configured in this "
                f"deployment: set {CONFIGURED_BY[provider]} to use it"
            )
        return (
            f"unknown language model provider {provider!r}; this deployment offers "
            f"{', '.join(self.configured_providers())}"
        )


def _secret(value: Secret | None) -> str:
    return value.get_secret_value().strip() if value is not None else ""
