"""Language models for MedStation: what summary and chat ask, and who answers.

`types` holds the vocabulary (requests, completions, a patient's chart), `model` the one
interface every provider implements, `errors` how a provider's failure reaches a client.

Services need only these:

- `registry.ModelRegistry(settings.llm)` — built once in bootstrap from the `LlmSettings`
  section of the service's settings; `language_model(provider)` for chat,
  `summarizer(provider, model)` for summaries, `configured_providers()` for the catalogue,
  `aclose()` at shutdown. Names: `registry.OFFLINE`, `OFFLINE_MODEL`, `OLLAMA`, `OPENAI`,
  `ANTHROPIC`, `PROVIDERS`.
- `offline_summary.OfflineSummarizer` / `offline_chat.OfflineLanguageModel` — the
  deterministic models that need no network (the registry's `offline` provider).
- `prompts.system_prompt(request)` — how a chart reaches a remote model (for tracing or
  display; the adapters already use it).

Tests can talk to `devstack.fake_llm.FakeLlmServer`, which speaks all three remote APIs.
"""
