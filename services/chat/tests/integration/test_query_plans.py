"""The lists and the search have their indexes: on tens of thousands of messages, EXPLAIN
shows no sequential scan in the exact statements the repository runs."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chat.__main__ import MIGRATIONS
from chat.repository import (
    SearchQuery,
    chat_page_statement,
    latest_messages_statement,
    message_page_statement,
    search_statement,
)
from devstack.pytest_plugin import MakeDatabase
from devstack.query_plans import fill_database, query_plan
from medstation_platform.migrations import upgrade_to_head

CHATS = 2_000
MESSAGES_PER_CHAT = 20
CLINICIAN = str(uuid.UUID(int=1, version=4))  # owns every 40th chat
SOME_CHAT = str(uuid.UUID(int=2, version=4))
SOME_ID = str(uuid.UUID(int=3, version=4))
LIMIT = 51

_FILL = [
    """
    INSERT INTO chats (id, owner_id, title, model_id, created_at, updated_at, deleted_at)
    SELECT CASE WHEN i = 1 THEN :some_chat ELSE gen_random_uuid()::text END::uuid,
           CASE WHEN i % 40 = 1 THEN :clinician ELSE gen_random_uuid()::text END::uuid,
           'chat ' || i, (SELECT id FROM models LIMIT 1),
           TIMESTAMPTZ '2026-01-01 00:00:00+00' + i * INTERVAL '1 minute',
           TIMESTAMPTZ '2026-01-01 00:00:00+00' + i * INTERVAL '1 minute',
           CASE WHEN i % 10 = 0 THEN now() END
    FROM generate_series(1, :chats) AS i
    """,
    """
    INSERT INTO messages (id, chat_id, owner_id, role, content, token_count, created_at)
    SELECT gen_random_uuid(), c.id, c.owner_id,
           (ARRAY['user', 'assistant'])[1 + n % 2],
           (ARRAY['blood pressure follow-up', 'metformin dosing in renal impairment',
                  'chest pain differential', 'warfarin and antibiotics',
                  'asthma inhaler technique'])[1 + (n + length(c.title)) % 5]
           || ' visit ' || n,
           7, c.created_at + n * INTERVAL '1 second'
    FROM chats c, generate_series(1, :per_chat) AS n
    """,
    "ANALYZE",
]


@pytest.fixture(scope="module")
def plans_database_url(make_database: MakeDatabase) -> str:
    url = make_database("chat_plans")
    upgrade_to_head(MIGRATIONS, url)
    parameters = {
        "chats": CHATS,
        "per_chat": MESSAGES_PER_CHAT,
        "clinician": CLINICIAN,
        "some_chat": SOME_CHAT,
    }
    fill_database(url, _FILL, parameters)
    return url


@pytest.fixture
async def plans_engine(plans_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(plans_database_url)
    yield engine
    await engine.dispose()


def _indexes_used(nodes: list[dict[str, Any]]) -> set[str]:
    scans = [node["Node Type"] for node in nodes]
    assert "Seq Scan" not in scans, json.dumps(nodes, indent=1, default=str)
    return {node["Index Name"] for node in nodes if "Index Name" in node}


@pytest.mark.parametrize("page", ["first", "next"])
async def test_list_chats_uses_the_owner_index(plans_engine: AsyncEngine, page: str) -> None:
    after = None if page == "first" else (datetime(2026, 1, 1, 12, tzinfo=UTC), SOME_ID)

    used = _indexes_used(
        await query_plan(plans_engine, chat_page_statement(CLINICIAN, after, LIMIT))
    )

    assert "chats_owner_created_id_idx" in used


@pytest.mark.parametrize("after_seq", [None, 5])
async def test_a_chats_messages_come_from_the_chat_index(
    plans_engine: AsyncEngine, after_seq: int | None
) -> None:
    for statement in (
        message_page_statement(SOME_CHAT, after_seq, LIMIT),
        latest_messages_statement(SOME_CHAT, 20),
    ):
        assert "messages_chat_seq_idx" in _indexes_used(await query_plan(plans_engine, statement))


@pytest.mark.parametrize("page", ["first", "next"])
async def test_search_uses_the_full_text_index(plans_engine: AsyncEngine, page: str) -> None:
    after = None if page == "first" else (0.05, datetime(2026, 1, 2, tzinfo=UTC), SOME_ID)
    query = SearchQuery(CLINICIAN, "warfarin antibiotics", after, LIMIT)

    used = _indexes_used(await query_plan(plans_engine, search_statement(query)))

    assert "messages_search_idx" in used
