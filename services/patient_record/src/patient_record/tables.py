"""The patient database's tables (the migrations create them; this mirrors them for queries)."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    LargeBinary,
    MetaData,
    Table,
    Text,
    Uuid,
)

from medstation_platform.outbox import outbox_table

metadata = MetaData()

patients = Table(
    "patients",
    metadata,
    Column("id", Uuid(as_uuid=False), primary_key=True),
    Column("name", Text, nullable=False),
    Column("date_of_birth", Date, nullable=False),
    Column("sex", Text, nullable=False),
    Column("mrn", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

care_team = Table(
    "care_team",
    metadata,
    Column("patient_id", Uuid(as_uuid=False), primary_key=True),
    Column("user_id", Uuid(as_uuid=False), primary_key=True),
    Column("added_at", DateTime(timezone=True), nullable=False),
)

notes = Table(
    "notes",
    metadata,
    Column("id", Uuid(as_uuid=False), primary_key=True),
    Column("patient_id", Uuid(as_uuid=False), nullable=False),
    Column("author_id", Uuid(as_uuid=False), nullable=False),
    Column("content", Text, nullable=False),
    Column("note_time", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Uuid(as_uuid=False), primary_key=True),
    Column("actor_id", Uuid(as_uuid=False), nullable=False),
    Column("action", Text, nullable=False),
    Column("patient_id", Uuid(as_uuid=False), nullable=False),
    Column("note_id", Uuid(as_uuid=False)),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("trace_id", Text, nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("caller_id", Uuid(as_uuid=False), primary_key=True),
    Column("request_id", Uuid(as_uuid=False), primary_key=True),
    Column("request_hash", LargeBinary, nullable=False),
    Column("resource_id", Uuid(as_uuid=False), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

outbox = outbox_table(metadata)
