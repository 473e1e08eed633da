"""Every SQL statement of the chat service. Repositories stage; the unit of work commits.
The statements are built by module functions so that tests can EXPLAIN exactly what the
repositories run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from typing import cast as typing_cast

from sqlalchemy import (
    REAL,
    ColumnElement,
    DateTime,
    Select,
    Uuid,
    cast,
    exc,
    func,
    insert,
    literal,
    literal_column,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from chat import tables
from chat.domain import (
    Chat,
    IdempotencyKeyReused,
    Message,
    Model,
    ModelNameTaken,
    Role,
)
from medstation_platform.db import UnitOfWork

_models = tables.models
_chats = tables.chats
_messages = tables.messages
_UUID = Uuid(as_uuid=False)
_TIMESTAMP = DateTime(timezone=True)
_MODEL_NAME_UNIQUE = "models_name_key"
_REQUEST_UNIQUE = "messages_owner_request_key"
# The configuration the generated `search` column was built with; queries must match it.
_TEXT_SEARCH_CONFIG: ColumnElement[Any] = literal_column("'english'::regconfig")

TimeCursor = tuple[datetime, str]  # a row's timestamp and id
SearchCursor = tuple[float, datetime, str]  # rank, created_at, id


@dataclass(frozen=True)
class SearchQuery:
    owner_id: str
    text: str
    after: SearchCursor | None
    limit: int


@dataclass(frozen=True)
class SearchHit:
    message: Message
    rank: float
    # The patient of the chat the message is in, if any: the caller must still be on its
    # care team to see the message.
    patient_id: str | None


# ---- statements ----


def model_page_statement(
    *, enabled_only: bool, after: TimeCursor | None, limit: int
) -> Select[Any]:
    """Models in the order they were added."""
    statement = select(_models)
    if enabled_only:
        statement = statement.where(_models.c.enabled)
    if after is not None:
        bound = tuple_(literal(after[0], _TIMESTAMP), literal(after[1], _UUID))
        statement = statement.where(tuple_(_models.c.created_at, _models.c.id) > bound)
    return statement.order_by(_models.c.created_at, _models.c.id).limit(limit)


def _live_chat(chat_id: str, owner_id: str) -> Select[Any]:
    return select(_chats).where(
        _chats.c.id == chat_id, _chats.c.owner_id == owner_id, _chats.c.deleted_at.is_(None)
    )


def chat_page_statement(owner_id: str, after: TimeCursor | None, limit: int) -> Select[Any]:
    """The owner's live chats, newest first."""
    statement = select(_chats).where(_chats.c.owner_id == owner_id, _chats.c.deleted_at.is_(None))
    if after is not None:
        bound = tuple_(literal(after[0], _TIMESTAMP), literal(after[1], _UUID))
        statement = statement.where(tuple_(_chats.c.created_at, _chats.c.id) < bound)
    return statement.order_by(_chats.c.created_at.desc(), _chats.c.id.desc()).limit(limit)


def message_page_statement(chat_id: str, after_seq: int | None, limit: int) -> Select[Any]:
    """A chat's messages in the order they were stored."""
    statement = select(_messages).where(_messages.c.chat_id == chat_id)
    if after_seq is not None:
        statement = statement.where(_messages.c.seq > after_seq)
    return statement.order_by(_messages.c.seq).limit(limit)


def latest_messages_statement(chat_id: str, limit: int) -> Select[Any]:
    statement = select(_messages).where(_messages.c.chat_id == chat_id)
    return statement.order_by(_messages.c.seq.desc()).limit(limit)


def search_statement(query: SearchQuery) -> Select[Any]:
    """The owner's messages in live chats matching `query.text`, best match first, then
    newest; keyset-paginated on (rank, created_at, id)."""
    tsquery = func.websearch_to_tsquery(_TEXT_SEARCH_CONFIG, query.text)
    rank = func.ts_rank(_messages.c.search, tsquery, type_=REAL)
    statement = (
        select(_messages, rank.label("rank"), _chats.c.patient_id.label("chat_patient_id"))
        .join(_chats, _chats.c.id == _messages.c.chat_id)
        .where(
            _messages.c.owner_id == query.owner_id,
            # Redundant with the line above, but it lets the owner's live chats come from
            # their index instead of a scan of every chat.
            _chats.c.owner_id == query.owner_id,
            _chats.c.deleted_at.is_(None),
            _messages.c.search.bool_op("@@")(tsquery),
        )
    )
    keys = tuple_(rank, _messages.c.created_at, _messages.c.id)
    if query.after is not None:
        last_rank, created_at, message_id = query.after
        # ts_rank is a float4: the bound must be one too, or the float8 the token carried
        # would compare unequal to the very row it came from.
        bound = tuple_(
            cast(literal(last_rank), REAL),
            literal(created_at, _TIMESTAMP),
            literal(message_id, _UUID),
        )
        statement = statement.where(keys < bound)
    order = (rank.desc(), _messages.c.created_at.desc(), _messages.c.id.desc())
    return statement.order_by(*order).limit(query.limit)


# ---- rows to domain objects ----


def _model(row: Any) -> Model:
    return Model(
        id=str(row.id),
        name=row.name,
        provider=row.provider,
        price_per_million_tokens=row.price_per_million_tokens,
        enabled=row.enabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _chat(row: Any) -> Chat:
    return Chat(
        id=str(row.id),
        owner_id=str(row.owner_id),
        title=row.title,
        model_id=str(row.model_id),
        patient_id=None if row.patient_id is None else str(row.patient_id),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _message(row: Any) -> Message:
    return Message(
        id=str(row.id),
        chat_id=str(row.chat_id),
        owner_id=str(row.owner_id),
        role=typing_cast(Role, row.role),
        content=row.content,
        token_count=row.token_count,
        created_at=row.created_at,
        request_id=None if row.request_id is None else str(row.request_id),
        reply_to=None if row.reply_to is None else str(row.reply_to),
    )


def _violated(error: exc.IntegrityError, constraint: str) -> bool:
    diag = getattr(error.orig, "diag", None)
    return getattr(diag, "constraint_name", None) == constraint


def _model_values(model: Model) -> dict[str, Any]:
    return {
        "name": model.name,
        "provider": model.provider,
        "price_per_million_tokens": model.price_per_million_tokens,
        "enabled": model.enabled,
        "updated_at": model.updated_at,
    }


# ---- repositories ----


class ModelRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, model: Model) -> None:
        """ModelNameTaken when another model has the name."""
        values = {"id": model.id, "created_at": model.created_at, **_model_values(model)}
        await self._write(insert(_models).values(values))

    async def get(self, model_id: str) -> Model | None:
        statement = select(_models).where(_models.c.id == model_id)
        row = (await self._connection.execute(statement)).first()
        return None if row is None else _model(row)

    async def save(self, model: Model) -> None:
        statement = update(_models).where(_models.c.id == model.id)
        await self._write(statement.values(_model_values(model)))

    async def list_page(
        self, *, enabled_only: bool, after: TimeCursor | None, limit: int
    ) -> list[Model]:
        statement = model_page_statement(enabled_only=enabled_only, after=after, limit=limit)
        return [_model(row) for row in await self._connection.execute(statement)]

    async def _write(self, statement: Any) -> None:
        try:
            # A savepoint: the unique violation must not poison the whole transaction.
            async with self._connection.begin_nested():
                await self._connection.execute(statement)
        except exc.IntegrityError as error:
            if _violated(error, _MODEL_NAME_UNIQUE):
                raise ModelNameTaken() from None
            raise


class ChatRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, chat: Chat) -> None:
        await self._connection.execute(insert(_chats).values(vars(chat)))

    async def get(self, chat_id: str, *, owner_id: str) -> Chat | None:
        """The chat if it is `owner_id`'s and not deleted."""
        row = (await self._connection.execute(_live_chat(chat_id, owner_id))).first()
        return None if row is None else _chat(row)

    async def lock(self, chat_id: str, *, owner_id: str) -> Chat | None:
        """Like `get`, holding the row until commit: one exchange at a time is stored in a
        chat, so message order is commit order, and a deletion waits for it (or wins)."""
        statement = _live_chat(chat_id, owner_id).with_for_update()
        row = (await self._connection.execute(statement)).first()
        return None if row is None else _chat(row)

    async def save(self, chat: Chat) -> None:
        statement = update(_chats).where(_chats.c.id == chat.id)
        await self._connection.execute(
            statement.values(title=chat.title, updated_at=chat.updated_at)
        )

    async def soft_delete(self, chat_id: str, *, owner_id: str, at: datetime) -> bool:
        statement = (
            update(_chats)
            .where(
                _chats.c.id == chat_id,
                _chats.c.owner_id == owner_id,
                _chats.c.deleted_at.is_(None),
            )
            .values(deleted_at=at)
            .returning(_chats.c.id)
        )
        return (await self._connection.execute(statement)).first() is not None

    async def list_page(self, owner_id: str, *, after: TimeCursor | None, limit: int) -> list[Chat]:
        statement = chat_page_statement(owner_id, after, limit)
        return [_chat(row) for row in await self._connection.execute(statement)]


class MessageRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, message: Message) -> None:
        """IdempotencyKeyReused when the owner already used the message's request_id."""
        try:
            async with self._connection.begin_nested():
                await self._connection.execute(insert(_messages).values(vars(message)))
        except exc.IntegrityError as error:
            if _violated(error, _REQUEST_UNIQUE):  # a concurrent twin in another chat won
                raise IdempotencyKeyReused() from None
            raise

    async def latest(self, chat_id: str, *, limit: int) -> list[Message]:
        """The chat's newest `limit` messages, oldest first."""
        rows = await self._connection.execute(latest_messages_statement(chat_id, limit))
        return [_message(row) for row in reversed(rows.all())]

    async def list_page(
        self, chat_id: str, *, after_seq: int | None, limit: int
    ) -> list[tuple[Message, int]]:
        rows = await self._connection.execute(message_page_statement(chat_id, after_seq, limit))
        return [(_message(row), row.seq) for row in rows]

    async def by_request(self, owner_id: str, request_id: str) -> Message | None:
        statement = select(_messages).where(
            _messages.c.owner_id == owner_id, _messages.c.request_id == request_id
        )
        row = (await self._connection.execute(statement)).first()
        return None if row is None else _message(row)

    async def reply_to(self, message_id: str) -> Message | None:
        statement = select(_messages).where(_messages.c.reply_to == message_id)
        row = (await self._connection.execute(statement)).first()
        return None if row is None else _message(row)

    async def search(self, query: SearchQuery) -> list[SearchHit]:
        rows = await self._connection.execute(search_statement(query))
        return [
            SearchHit(
                _message(row),
                float(row.rank),
                None if row.chat_patient_id is None else str(row.chat_patient_id),
            )
            for row in rows
        ]


class ChatUnitOfWork(UnitOfWork):
    models: ModelRepository
    chats: ChatRepository
    messages: MessageRepository

    def bind(self, connection: AsyncConnection) -> None:
        self.models = ModelRepository(connection)
        self.chats = ChatRepository(connection)
        self.messages = MessageRepository(connection)
