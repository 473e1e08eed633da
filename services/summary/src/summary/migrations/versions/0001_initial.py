"""Summaries, summary jobs, and the patients deleted (so nothing is summarized after).

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    _summaries()
    _summary_jobs()
    op.create_table(
        "deleted_patients",
        sa.Column("patient_id", sa.Uuid(), primary_key=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
    )


def _summaries() -> None:
    op.create_table(
        "summaries",
        sa.Column("id", sa.Uuid(), primary_key=True),
        # No foreign key: patients live in another service's database.
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("patient_age", sa.Integer(), nullable=False),
        sa.Column("note_count", sa.Integer(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stale", sa.Boolean(), nullable=False, server_default=sa.false()),
        # One summary per chart: concurrent writers of the same one insert it once.
        sa.UniqueConstraint("patient_id", "fingerprint", name="summaries_patient_fingerprint_key"),
        sa.CheckConstraint("note_count > 0 AND patient_age >= 0", name="summaries_counts"),
    )
    # ListSummaries: newest first, id breaking ties, for the keyset.
    op.create_index(
        "summaries_patient_generated_idx", "summaries", ["patient_id", "generated_at", "id"]
    )


def _summary_jobs() -> None:
    op.create_table(
        "summary_jobs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("creator_id", sa.Uuid(), nullable=False),
        sa.Column("creator_role", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Uuid()),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
        # When the job was last appended to the stream (or that was last tried).
        sa.Column("enqueued_at", sa.DateTime(timezone=True)),
        sa.Column("stream_entry_id", sa.Text()),
        sa.Column("summary_id", sa.Uuid(), sa.ForeignKey("summaries.id")),
        sa.Column("error", sa.Text(), nullable=False, server_default=""),
        # The creator's access token, AES-GCM sealed; erased when the job ends.
        sa.Column("sealed_credentials", sa.LargeBinary()),
        sa.Column("trace_context", JSONB()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED')", name="summary_jobs_state"
        ),
        sa.CheckConstraint(
            "state <> 'SUCCEEDED' OR summary_id IS NOT NULL",
            name="summary_jobs_summary_when_succeeded",
        ),
        sa.CheckConstraint(
            "state IN ('QUEUED', 'RUNNING') OR sealed_credentials IS NULL",
            name="summary_jobs_credentials_erased_when_ended",
        ),
        # A retried CreateSummaryJob finds the first job (NULLs never conflict).
        sa.UniqueConstraint("creator_id", "request_id", name="summary_jobs_request_key"),
    )
    op.create_index("summary_jobs_patient_idx", "summary_jobs", ["patient_id"])
    # The reconciler's scans stay small however many ended jobs accumulate.
    op.create_index(
        "summary_jobs_unfinished_idx",
        "summary_jobs",
        ["state", "enqueued_at"],
        postgresql_where=sa.text("state IN ('QUEUED', 'RUNNING')"),
    )
