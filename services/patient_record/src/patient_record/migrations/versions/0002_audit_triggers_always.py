"""The audit trail's append-only triggers fire in every session, replication ones included.

A trigger enabled the default way is skipped by sessions with
`session_replication_role = replica` (how pg_restore --disable-triggers and logical
replication apply rows), so such a session could change or erase audit events. ENABLE
ALWAYS closes that path. What remains is the table's owner (the role migrations run as)
dropping or disabling the triggers outright: only separate owner and service roles close it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TRIGGERS = ("audit_events_no_update_or_delete", "audit_events_no_truncate")


def upgrade() -> None:
    for trigger in _TRIGGERS:
        op.execute(f"ALTER TABLE audit_events ENABLE ALWAYS TRIGGER {trigger}")


def downgrade() -> None:
    for trigger in _TRIGGERS:
        op.execute(f"ALTER TABLE audit_events ENABLE TRIGGER {trigger}")
