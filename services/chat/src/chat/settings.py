"""The chat service's configuration (MEDSTATION_* environment variables)."""

from __future__ import annotations

from pydantic import Field

from medstation_llm.settings import LlmSettings
from medstation_platform.settings import ServiceSettings


class ChatSettings(ServiceSettings, LlmSettings):
    grpc_port: int = Field(default=50054, ge=0, le=65535)
    database_url: str = Field(
        default="postgresql+psycopg://medstation_chat@127.0.0.1:5432/medstation_chat",
        pattern=r"^postgresql\+psycopg://",
    )
    patient_service_addr: str = "127.0.0.1:50052"
    # Each call to the patient-record service; a caller's shorter deadline wins.
    patient_service_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Messages a user may send per window, across all their chats (a fixed window in Redis).
    rate_limit_messages: int = Field(default=30, ge=1)
    rate_limit_window_seconds: int = Field(default=60, ge=1, le=3600)
    # What the model sees of a conversation: the newest messages, within a character budget.
    history_max_messages: int = Field(default=20, ge=0, le=200)
    history_max_chars: int = Field(default=48_000, ge=0)
    # What the model sees of a patient's chart: the newest notes, within a character budget.
    chart_max_notes: int = Field(default=20, ge=0, le=100)
    chart_max_chars: int = Field(default=24_000, ge=0)
    max_output_tokens: int = Field(default=1024, ge=1, le=32_768)
    # How long a stopping server lets replies already being written finish and be stored.
    reply_drain_seconds: float = Field(default=10.0, ge=0)
