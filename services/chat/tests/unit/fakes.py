"""In-memory stand-ins for the chat service's I/O: the unit of work, the language models,
the patient-record service, the rate limiter and the clock.

The fake repositories subclass the real ones so mypy holds them to the same method
signatures; they never touch the connection the real ones would use.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from chat.domain import (
    Chat,
    IdempotencyKeyReused,
    Message,
    Model,
    ModelNameTaken,
    PatientNotFound,
    RateLimited,
)
from chat.repository import (
    ChatRepository,
    ChatUnitOfWork,
    MessageRepository,
    ModelRepository,
    SearchHit,
    SearchQuery,
    TimeCursor,
)
from devstack import fake_database
from devstack.fake_database import StagedUnitOfWork
from medstation_llm.errors import ModelNotConfigured
from medstation_llm.model import LanguageModel
from medstation_llm.types import ChatRequest, Completion, PatientChart, StreamEvent, TextDelta
from medstation_platform import errors
from medstation_platform.auth.principal import Principal

_WORD = re.compile(r"\w+")


@dataclass
class Tables:
    """What the database holds (committed) or a transaction sees."""

    models: dict[str, Model] = field(default_factory=dict)
    chats: dict[str, Chat] = field(default_factory=dict)
    deleted: dict[str, datetime] = field(default_factory=dict)  # chat id -> deleted_at
    messages: list[Message] = field(default_factory=list)  # in insertion (seq) order

    def copy(self) -> Tables:
        # Rows are frozen dataclasses: copying the containers isolates a transaction.
        return Tables(dict(self.models), dict(self.chats), dict(self.deleted), list(self.messages))

    def live_chat(self, chat_id: str, owner_id: str) -> Chat | None:
        chat = self.chats.get(chat_id)
        if chat is None or chat.owner_id != owner_id or chat_id in self.deleted:
            return None
        return chat


class FakeModels(ModelRepository):
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def add(self, model: Model) -> None:
        self._check_name(model)
        self._tables.models[model.id] = model

    async def get(self, model_id: str) -> Model | None:
        return self._tables.models.get(model_id)

    async def save(self, model: Model) -> None:
        self._check_name(model)
        self._tables.models[model.id] = model

    async def list_page(
        self, *, enabled_only: bool, after: TimeCursor | None, limit: int
    ) -> list[Model]:
        models = [m for m in self._tables.models.values() if m.enabled or not enabled_only]
        models.sort(key=lambda m: (m.created_at, m.id))
        if after is not None:
            models = [m for m in models if (m.created_at, m.id) > after]
        return models[:limit]

    def _check_name(self, model: Model) -> None:
        others = (m for m in self._tables.models.values() if m.id != model.id)
        if any(other.name == model.name for other in others):
            raise ModelNameTaken()


class FakeChats(ChatRepository):
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def add(self, chat: Chat) -> None:
        self._tables.chats[chat.id] = chat

    async def get(self, chat_id: str, *, owner_id: str) -> Chat | None:
        return self._tables.live_chat(chat_id, owner_id)

    async def lock(self, chat_id: str, *, owner_id: str) -> Chat | None:
        """One event loop, no concurrent transactions: nothing to serialize."""
        return self._tables.live_chat(chat_id, owner_id)

    async def save(self, chat: Chat) -> None:
        self._tables.chats[chat.id] = chat

    async def soft_delete(self, chat_id: str, *, owner_id: str, at: datetime) -> bool:
        if self._tables.live_chat(chat_id, owner_id) is None:
            return False
        self._tables.deleted[chat_id] = at
        return True

    async def list_page(self, owner_id: str, *, after: TimeCursor | None, limit: int) -> list[Chat]:
        chats = [
            chat
            for chat in self._tables.chats.values()
            if self._tables.live_chat(chat.id, owner_id) is not None
        ]
        chats.sort(key=lambda chat: (chat.created_at, chat.id), reverse=True)
        if after is not None:
            chats = [chat for chat in chats if (chat.created_at, chat.id) < after]
        return chats[:limit]


class FakeMessages(MessageRepository):
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def add(self, message: Message) -> None:
        if message.request_id is not None and any(
            (m.owner_id, m.request_id) == (message.owner_id, message.request_id)
            for m in self._tables.messages
        ):
            raise IdempotencyKeyReused()
        self._tables.messages.append(message)

    async def latest(self, chat_id: str, *, limit: int) -> list[Message]:
        in_chat = [m for m in self._tables.messages if m.chat_id == chat_id]
        return in_chat[-limit:] if limit else []

    async def list_page(
        self, chat_id: str, *, after_seq: int | None, limit: int
    ) -> list[tuple[Message, int]]:
        rows = [
            (message, seq)
            for seq, message in enumerate(self._tables.messages, start=1)
            if message.chat_id == chat_id and (after_seq is None or seq > after_seq)
        ]
        return rows[:limit]

    async def by_request(self, owner_id: str, request_id: str) -> Message | None:
        return next(
            (
                m
                for m in self._tables.messages
                if m.owner_id == owner_id and m.request_id == request_id
            ),
            None,
        )

    async def reply_to(self, message_id: str) -> Message | None:
        return next((m for m in self._tables.messages if m.reply_to == message_id), None)

    async def search(self, query: SearchQuery) -> list[SearchHit]:
        """Stands in for full-text search: a message matches when it has every query word;
        its rank is how often they occur."""
        words = {word.lower() for word in _WORD.findall(query.text)}
        hits: list[SearchHit] = []
        for message in self._tables.messages:
            found = [word.lower() for word in _WORD.findall(message.content)]
            chat = self._tables.live_chat(message.chat_id, query.owner_id)
            if chat is not None and words and words <= set(found):
                rank = float(sum(found.count(word) for word in words))
                hits.append(SearchHit(message, rank, chat.patient_id))

        def key(hit: SearchHit) -> tuple[float, datetime, str]:
            return (hit.rank, hit.message.created_at, hit.message.id)

        hits.sort(key=key, reverse=True)
        if query.after is not None:
            after = query.after
            hits = [hit for hit in hits if key(hit) < after]
        return hits[: query.limit]


class FakeDatabase(fake_database.FakeDatabase[Tables]):
    def __init__(self) -> None:
        super().__init__(Tables())

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    def messages_of(self, chat_id: str) -> list[Message]:
        return [m for m in self.committed.messages if m.chat_id == chat_id]


class FakeUnitOfWork(StagedUnitOfWork[Tables], ChatUnitOfWork):
    """Stages changes on a private copy; `commit` publishes it, leaving discards it."""

    def bind_tables(self, tables: Tables) -> None:
        self.models = FakeModels(tables)
        self.chats = FakeChats(tables)
        self.messages = FakeMessages(tables)


class ScriptedModel:
    """A language model that answers with a fixed text, a few characters per delta.

    `fail_with` fails the next call before its first delta (or after `fail_after` deltas);
    `gate`, when set, holds the reply after its first delta until the test opens it.
    """

    def __init__(self, provider: str = "offline", reply: str = "Take it with food.") -> None:
        self._provider = provider
        self.reply = reply
        self.requests: list[ChatRequest] = []
        self.fail_with: errors.DomainError | None = None
        self.fail_after = 0
        self.gate: asyncio.Event | None = None
        self.asked = asyncio.Event()  # set once the model has been asked
        self.chunk = 5

    @property
    def provider(self) -> str:
        return self._provider

    async def complete(self, request: ChatRequest) -> Completion:
        async for event in self.stream(request):
            if isinstance(event, Completion):
                return event
        raise AssertionError("a stream ends with its completion")

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        self.requests.append(request)
        self.asked.set()
        pieces = [self.reply[i : i + self.chunk] for i in range(0, len(self.reply), self.chunk)]
        for index, piece in enumerate(pieces):
            if self.fail_with is not None and index == self.fail_after:
                raise self.fail_with
            yield TextDelta(piece)
            if index == 0 and self.gate is not None:
                await self.gate.wait()
        yield Completion(
            text=self.reply,
            provider=self._provider,
            model=request.model,
            input_tokens=sum(len(turn.content) for turn in request.messages) // 4,
            output_tokens=len(self.reply) // 4 + 1,
            latency_ms=1,
        )

    async def aclose(self) -> None:
        """Nothing to release."""


class FakeModelSource:
    """One scripted model per provider; a provider without one is not configured."""

    def __init__(self, *models: ScriptedModel) -> None:
        self.models = {model.provider: model for model in models}
        self.closed = False

    def language_model(self, provider: str) -> LanguageModel:
        if provider not in self.models:
            raise ModelNotConfigured()
        return self.models[provider]

    async def aclose(self) -> None:
        self.closed = True


@dataclass
class FakePatient:
    care_team: set[str]
    chart: PatientChart


class FakePatientRecords:
    """Patients with care teams; admins see every patient, as in the real service."""

    def __init__(self) -> None:
        self.patients: dict[str, FakePatient] = {}
        self.charts_read: list[tuple[str, str]] = []  # (caller, patient id)

    def add(self, patient_id: str, care_team: Sequence[str], chart: PatientChart) -> None:
        self.patients[patient_id] = FakePatient(set(care_team), chart)

    async def check_access(self, principal: Principal, patient_id: str) -> None:
        self._visible(principal, patient_id)

    async def chart(self, principal: Principal, patient_id: str, *, today: date) -> PatientChart:
        patient = self._visible(principal, patient_id)
        self.charts_read.append((principal.user_id, patient_id))
        return replace(patient.chart, as_of=today)

    def _visible(self, principal: Principal, patient_id: str) -> FakePatient:
        patient = self.patients.get(patient_id)
        if patient is None or not (principal.is_admin or principal.user_id in patient.care_team):
            raise PatientNotFound()
        return patient


class FakeRateLimiter:
    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self.counts: dict[str, int] = {}

    async def acquire(self, user_id: str) -> None:
        self.counts[user_id] = self.counts.get(user_id, 0) + 1
        if self.counts[user_id] > self.limit:
            raise RateLimited(self.limit, 60, 60)


class FixedClock:
    """Time stands still until a test moves it; each reading moves it a microsecond, so
    what happens later is stamped later."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta
