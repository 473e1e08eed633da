"""The summary database's tables (the migrations create them; this mirrors them for queries)."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

summaries = Table(
    "summaries",
    metadata,
    Column("id", Uuid(as_uuid=False), primary_key=True),
    Column("patient_id", Uuid(as_uuid=False), nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("patient_age", Integer, nullable=False),
    Column("note_count", Integer, nullable=False),
    Column("provider", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("latency_ms", Integer, nullable=False),
    Column("generated_at", DateTime(timezone=True), nullable=False),
    Column("stale", Boolean, nullable=False),
)

summary_jobs = Table(
    "summary_jobs",
    metadata,
    Column("id", Uuid(as_uuid=False), primary_key=True),
    Column("patient_id", Uuid(as_uuid=False), nullable=False),
    Column("creator_id", Uuid(as_uuid=False), nullable=False),
    Column("creator_role", Text, nullable=False),
    Column("request_id", Uuid(as_uuid=False)),
    Column("state", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("lease_expires_at", DateTime(timezone=True)),
    Column("enqueued_at", DateTime(timezone=True)),
    Column("stream_entry_id", Text),
    Column("summary_id", Uuid(as_uuid=False), ForeignKey("summaries.id")),
    Column("error", Text, nullable=False),
    Column("sealed_credentials", LargeBinary),
    Column("trace_context", JSONB(none_as_null=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

deleted_patients = Table(
    "deleted_patients",
    metadata,
    Column("patient_id", Uuid(as_uuid=False), primary_key=True),
    Column("deleted_at", DateTime(timezone=True), nullable=False),
)
