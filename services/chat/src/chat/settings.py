"""The chat service's configuration (MEDSTATION_* environment variables)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from medstation_llm.settings import LlmSettings
from medstation_platform.settings import DatabaseUrl, Port, ServiceSettings


class ChatSettings(ServiceSettings, frozen=True, kw_only=True):
    grpc_port: Port = 50054
    database_url: DatabaseUrl = (
        "postgresql+psycopg://medstation_chat@127.0.0.1:5432/medstation_chat"
    )
    # The language models: read from the same MEDSTATION_LLM_*, _OLLAMA_*, _OPENAI_* and
    # _ANTHROPIC_* variables as if its fields were declared here.
    llm: LlmSettings = msgspec.field(default_factory=LlmSettings)
    patient_service_addr: str = "127.0.0.1:50052"
    # Each call to the patient-record service; a caller's shorter deadline wins.
    patient_service_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0
    # Messages a user may send per window, across all their chats (a fixed window in Redis).
    rate_limit_messages: Annotated[int, msgspec.Meta(ge=1)] = 30
    rate_limit_window_seconds: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 60
    # What the model sees of a conversation: the newest messages, within a character budget.
    history_max_messages: Annotated[int, msgspec.Meta(ge=0, le=200)] = 20
    history_max_chars: Annotated[int, msgspec.Meta(ge=0)] = 48_000
    # What the model sees of a patient's chart: the newest notes, within a character budget.
    chart_max_notes: Annotated[int, msgspec.Meta(ge=0, le=100)] = 20
    chart_max_chars: Annotated[int, msgspec.Meta(ge=0)] = 24_000
    max_output_tokens: Annotated[int, msgspec.Meta(ge=1, le=32_768)] = 1024
    # How long a stopping server lets replies already being written finish and be stored.
    reply_drain_seconds: Annotated[float, msgspec.Meta(ge=0)] = 10.0
