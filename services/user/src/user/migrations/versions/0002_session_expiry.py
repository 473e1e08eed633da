"""Sessions end after 30 minutes idle and 12 hours in all: each refresh token carries its
session's absolute end.

Existing sessions are brought under the same rules at once (with the default lengths):
a refresh token issued under the old 30-day lifetime would otherwise stay usable for weeks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("refresh_tokens", sa.Column("session_expires_at", sa.DateTime(timezone=True)))
    # A session starts with its family's first token; it ends 12 hours later.
    op.execute(
        """
        UPDATE refresh_tokens AS token
        SET session_expires_at = family.started_at + interval '12 hours'
        FROM (
          SELECT family_id, min(created_at) AS started_at
          FROM refresh_tokens GROUP BY family_id
        ) AS family
        WHERE family.family_id = token.family_id
        """
    )
    op.execute(
        "UPDATE refresh_tokens SET expires_at = LEAST("
        " expires_at, created_at + interval '30 minutes', session_expires_at)"
    )
    op.alter_column("refresh_tokens", "session_expires_at", nullable=False)


def downgrade() -> None:
    op.drop_column("refresh_tokens", "session_expires_at")
