"""The model catalogue with the offline model, chats (soft-deleted), messages with search.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TSVECTOR

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The offline model answers without a network, so every fresh deployment can chat at once.
# Spelled out rather than imported: a migration must mean the same thing forever.
_OFFLINE_MODEL = "medstation-offline"
_OFFLINE_PROVIDER = "offline"


def upgrade() -> None:
    _models()
    _chats()
    _messages()


def _models() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("price_per_million_tokens", sa.Float(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("char_length(name) BETWEEN 1 AND 100", name="models_name_length"),
        sa.CheckConstraint("price_per_million_tokens >= 0", name="models_price_not_negative"),
        sa.UniqueConstraint("name", name="models_name_key"),
    )
    op.create_index("models_created_at_id_idx", "models", ["created_at", "id"])
    op.execute(
        sa.text(
            "INSERT INTO models (id, name, provider, price_per_million_tokens, enabled,"
            " created_at, updated_at)"
            " VALUES (gen_random_uuid(), :name, :provider, 0, true, now(), now())"
            " ON CONFLICT (name) DO NOTHING"
        ).bindparams(name=_OFFLINE_MODEL, provider=_OFFLINE_PROVIDER)
    )


def _chats() -> None:
    op.create_table(
        "chats",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("model_id", sa.Uuid(), sa.ForeignKey("models.id"), nullable=False),
        # No foreign key: patients live in another service's database.
        sa.Column("patient_id", sa.Uuid()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        # Set by DeleteChat: hidden from every RPC, kept for retention.
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("char_length(title) <= 200", name="chats_title_length"),
    )
    # ListChats: the owner's live chats, newest first.
    op.create_index(
        "chats_owner_created_id_idx",
        "chats",
        ["owner_id", sa.text("created_at DESC"), sa.text("id DESC")],
        postgresql_where=sa.text("deleted_at IS NULL"),
    )


def _messages() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("chat_id", sa.Uuid(), sa.ForeignKey("chats.id"), nullable=False),
        # The chat's owner, copied: search and idempotency keys are per user.
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.Uuid()),
        sa.Column("reply_to", sa.Uuid(), sa.ForeignKey("messages.id")),
        sa.Column(
            "search",
            TSVECTOR(),
            sa.Computed("to_tsvector('english', content)", persisted=True),
            nullable=False,
        ),
        sa.CheckConstraint("role IN ('user', 'assistant')", name="messages_role_known"),
        sa.CheckConstraint("token_count >= 0", name="messages_token_count_not_negative"),
        sa.CheckConstraint(
            "role = 'assistant' OR char_length(content) BETWEEN 1 AND 32000",
            name="messages_user_content_length",
        ),
    )
    # ListMessages and the history window: a chat's messages in order.
    op.create_index("messages_chat_seq_idx", "messages", ["chat_id", "seq"])
    op.create_index("messages_reply_to_idx", "messages", ["reply_to"])
    # SendMessage retries: one request_id per user.
    op.create_index(
        "messages_owner_request_key",
        "messages",
        ["owner_id", "request_id"],
        unique=True,
        postgresql_where=sa.text("request_id IS NOT NULL"),
    )
    # SearchMessages: full-text search over the generated tsvector.
    op.create_index("messages_search_idx", "messages", ["search"], postgresql_using="gin")


def downgrade() -> None:
    op.drop_table("messages")
    op.drop_table("chats")
    op.drop_table("models")
