"""The chat database's tables (the migrations create them; this mirrors them for queries)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Computed,
    DateTime,
    Float,
    Identity,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import TSVECTOR

metadata = MetaData()

models = Table(
    "models",
    metadata,
    Column("id", Uuid(as_uuid=False), primary_key=True),
    Column("name", Text, nullable=False),
    Column("provider", Text, nullable=False),
    Column("price_per_million_tokens", Float, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

chats = Table(
    "chats",
    metadata,
    Column("id", Uuid(as_uuid=False), primary_key=True),
    Column("owner_id", Uuid(as_uuid=False), nullable=False),
    Column("title", Text, nullable=False),
    Column("model_id", Uuid(as_uuid=False), nullable=False),
    Column("patient_id", Uuid(as_uuid=False)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True)),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Uuid(as_uuid=False), primary_key=True),
    # Insertion order within a chat (the chat row is locked while a pair is stored).
    Column("seq", BigInteger, Identity(always=True), nullable=False),
    Column("chat_id", Uuid(as_uuid=False), nullable=False),
    Column("owner_id", Uuid(as_uuid=False), nullable=False),
    Column("role", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("token_count", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("request_id", Uuid(as_uuid=False)),
    Column("reply_to", Uuid(as_uuid=False)),
    Column("search", TSVECTOR, Computed("to_tsvector('english', content)", persisted=True)),
)
