"""Patients, care teams, notes, the append-only audit trail, idempotency keys, the outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from medstation_platform.outbox import create_outbox_table

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Trusted since PostgreSQL 13: the database owner may create it, no superuser needed.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    _patients()
    _care_team()
    _notes()
    _audit_events()
    op.create_table(
        "idempotency_keys",
        sa.Column("caller_id", sa.Uuid(), primary_key=True),
        sa.Column("request_id", sa.Uuid(), primary_key=True),
        sa.Column("request_hash", sa.LargeBinary(), nullable=False),
        # No foreign key: a key must outlive its resource, or a late retry would recreate it.
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    create_outbox_table()


def _patients() -> None:
    op.create_table(
        "patients",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=False),
        sa.Column("sex", sa.Text(), nullable=False),
        sa.Column("mrn", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("char_length(name) BETWEEN 1 AND 200", name="patients_name_length"),
        sa.CheckConstraint(
            "sex IN ('female', 'male', 'other', 'unknown')", name="patients_sex_known"
        ),
        sa.CheckConstraint("mrn <> '' AND char_length(mrn) <= 64", name="patients_mrn_shape"),
    )
    # One index per ListPatients ordering, id last for the keyset's tie-break.
    op.create_index("patients_name_id_idx", "patients", ["name", "id"])
    op.create_index("patients_date_of_birth_id_idx", "patients", ["date_of_birth", "id"])
    op.create_index("patients_created_at_id_idx", "patients", ["created_at", "id"])
    # Fuzzy name search (`%` and `<%` operators of pg_trgm).
    op.create_index(
        "patients_name_trgm_idx",
        "patients",
        ["name"],
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    )
    op.create_index(
        "patients_mrn_key",
        "patients",
        ["mrn"],
        unique=True,
        postgresql_where=sa.text("mrn IS NOT NULL"),
    )


def _care_team() -> None:
    op.create_table(
        "care_team",
        sa.Column(
            "patient_id",
            sa.Uuid(),
            sa.ForeignKey("patients.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("user_id", sa.Uuid(), primary_key=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
    )
    # "My patients": a clinician's list starts from their memberships.
    op.create_index("care_team_user_patient_idx", "care_team", ["user_id", "patient_id"])


def _notes() -> None:
    op.create_table(
        "notes",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "patient_id",
            sa.Uuid(),
            sa.ForeignKey("patients.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("note_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "char_length(content) BETWEEN 1 AND 100000", name="notes_content_length"
        ),
    )
    op.create_index(
        "notes_patient_note_time_id_idx",
        "notes",
        ["patient_id", sa.text("note_time DESC"), sa.text("id DESC")],
    )


def _audit_events() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("actor_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        # No foreign keys: the trail must outlive the patients and notes it speaks of.
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("note_id", sa.Uuid()),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trace_id", sa.Text(), nullable=False, server_default=""),
    )
    op.create_index("audit_events_occurred_id_idx", "audit_events", ["occurred_at", "id"])
    op.create_index(
        "audit_events_patient_occurred_id_idx",
        "audit_events",
        ["patient_id", "occurred_at", "id"],
    )
    op.create_index(
        "audit_events_actor_occurred_id_idx", "audit_events", ["actor_id", "occurred_at", "id"]
    )
    # Append-only even for code that forgets, or a console session: HIPAA audit controls.
    op.execute(
        """
        CREATE FUNCTION audit_events_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
            USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_events_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_events"
        " FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events"
        " FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
    )


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("idempotency_keys")
    op.drop_table("audit_events")
    op.execute("DROP FUNCTION audit_events_append_only()")
    op.drop_table("notes")
    op.drop_table("care_team")
    op.drop_table("patients")
