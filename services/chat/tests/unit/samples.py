"""Sample requests for the use cases: valid unless a test says otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

from chat import use_cases
from chat.domain import Chat, Exchange, Model
from chat.use_cases import ChatDetails, Chats, ModelDetails, PageRequest, StreamItem
from medstation_llm.types import ChartNote, PatientChart
from medstation_platform.auth.principal import Principal

FIRST_PAGE = PageRequest(0, "")


async def chat(
    chats: Chats, principal: Principal, model: Model, *, patient_id: str = "", title: str = ""
) -> Chat:
    return await use_cases.create_chat(
        chats, principal, ChatDetails(title=title, model_id=model.id, patient_id=patient_id)
    )


async def send(
    chats: Chats, principal: Principal, chat_id: str, content: str, *, request_id: str = ""
) -> Exchange:
    return await use_cases.send_message(chats, principal, chat_id, content, request_id=request_id)


async def drain(stream: AsyncIterator[StreamItem], received: list[StreamItem]) -> None:
    """Reads a stream to its end (or its error), keeping what arrived."""
    async for item in stream:
        received.append(item)


async def model(
    chats: Chats,
    admin: Principal,
    name: str,
    *,
    provider: str = "offline",
    enabled: bool = True,
    price: float = 0.0,
) -> Model:
    return await use_cases.create_model(chats, admin, ModelDetails(name, provider, price, enabled))


def chart(*notes: str) -> PatientChart:
    """A 61-year-old woman's chart; `notes` newest first."""
    return PatientChart(
        age_years=61,
        sex="female",
        date_of_birth=date(1964, 7, 1),
        as_of=date(2026, 3, 14),
        notes=[
            ChartNote(datetime(2026, 3, 10 - index, tzinfo=UTC), content)
            for index, content in enumerate(notes)
        ],
    )
