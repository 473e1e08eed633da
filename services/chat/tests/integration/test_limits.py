"""Input limits name the offending field; each user's sending rate is limited in Redis,
and a Redis outage lets messages through rather than stopping chat."""

from __future__ import annotations

import secrets

import grpc
import pytest
from redis.asyncio import Redis

from chat.domain import RateLimited
from chat.rate_limit import MessageRateLimiter
from devstack.ports import free_port
from devstack.rpc_failures import failure
from medstation.chat.v1 import chat_service_pb2 as pb
from medstation_platform.redis_connection import build_redis
from services.chat.tests.integration.chat_client import ChatClient
from services.chat.tests.integration.conftest import StartChat


async def test_bad_input_is_refused_naming_the_field(client: ChatClient) -> None:
    doctor = client.clinician()
    chat = await client.create_chat(doctor)
    cases = [
        (pb.SendMessageRequest(chat_id=chat.id, content=""), "content"),
        (pb.SendMessageRequest(chat_id=chat.id, content="x" * 32_001), "content"),
        (pb.SendMessageRequest(chat_id=chat.id, content="   "), "content"),
        (pb.SendMessageRequest(chat_id="not-a-uuid", content="hi"), "chat_id"),
        (pb.SendMessageRequest(chat_id=chat.id, content="hi", request_id="x"), "request_id"),
    ]
    for request, field in cases:
        failed = await failure(client.stub.SendMessage(request, metadata=doctor.metadata))
        assert (failed.code, failed.fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
    too_long_title = await failure(client.create_chat(doctor, title="t" * 201))
    negative_page = await failure(
        client.stub.ListChats(pb.ListChatsRequest(page_size=-1), metadata=doctor.metadata)
    )
    bad_token = await failure(
        client.stub.ListChats(pb.ListChatsRequest(page_token="forged"), metadata=doctor.metadata)
    )
    assert too_long_title.fields == ["title"]
    assert negative_page.fields == ["page_size"]
    assert (bad_token.reason, bad_token.fields) == ("INVALID_PAGE_TOKEN", ["page_token"])
    assert await client.messages(doctor, chat.id) == []


async def test_a_user_sending_too_fast_is_told_to_slow_down(start_chat: StartChat) -> None:
    _, client = await start_chat(rate_limit_messages=2)
    doctor, colleague = client.clinician(), client.clinician()
    chat = await client.create_chat(doctor)
    await client.send(doctor, chat.id, "one")
    await client.send(doctor, chat.id, "two")

    failed = await failure(client.send(doctor, chat.id, "three"))

    assert (failed.code, failed.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert len(await client.messages(doctor, chat.id)) == 4
    theirs = await client.create_chat(colleague)
    await client.send(colleague, theirs.id, "my own allowance")


async def test_the_window_resets(redis_url: str) -> None:
    redis = build_redis(redis_url, timeout_seconds=1)
    now = [60 * 16_000 + 20.0]  # twenty seconds into a window
    limiter = MessageRateLimiter(
        redis, limit=1, window_seconds=60, clock=lambda: now[0], namespace="test:chat:rate"
    )
    user = f"user-{secrets.token_hex(6)}"
    try:
        await limiter.acquire(user)
        with pytest.raises(RateLimited) as raised:
            await limiter.acquire(user)
        now[0] += 60
        await limiter.acquire(user)
    finally:
        await redis.delete(*[key async for key in redis.scan_iter(f"test:chat:rate:{user}:*")])
        await redis.aclose()
    assert raised.value.metadata == {"retry_after_seconds": "40"}


async def test_without_redis_messages_are_not_limited() -> None:
    redis: Redis = build_redis(f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.2)
    limiter = MessageRateLimiter(redis, limit=1, window_seconds=60)
    try:
        for _ in range(3):
            await limiter.acquire("someone")
    finally:
        await redis.aclose()
