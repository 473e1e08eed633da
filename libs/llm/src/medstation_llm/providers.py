"""Provider names as services store them, in one module every other module can import."""

from __future__ import annotations

OFFLINE = "offline"
OLLAMA = "ollama"
OPENAI = "openai"
ANTHROPIC = "anthropic"
PROVIDERS = (OFFLINE, OLLAMA, OPENAI, ANTHROPIC)
# The offline model's name, as the chat catalogue and summaries record it.
OFFLINE_MODEL = "medstation-offline"
