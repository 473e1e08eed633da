"""What the chat service does, one function per use case; each commits at most once.

Privacy: a chat exists only for the user who created it. Anyone else — admins included —
gets ChatNotFound, exactly as for a chat that never existed or was deleted. A chat about
a patient also needs the caller on the patient's care team, which only the patient-record
service knows: it is asked, as the caller, when the chat is created and whenever the
chat's messages are read or written.

Consistency of an exchange (SendMessage, StreamMessage): the model is asked first, and
only when its reply is complete are the user's message and the reply stored, together, in
one transaction. A failed or timed-out model call therefore leaves nothing behind (the
client sees UNAVAILABLE or DEADLINE_EXCEEDED and may simply retry), and no reader ever
sees a question without its answer or half an answer.

The reply is written by a detached task, not by the RPC itself: when the client goes away
mid-stream (or cancels a SendMessage), gRPC cancels the RPC but not that task, which
finishes the reply within the same time budget and stores the whole pair. So a
disconnect leaves the complete pair, and a retried SendMessage with the same request_id
gets it. Only when the budget itself runs out (the caller's deadline passed) is nothing
stored. Stopping the server waits for these tasks (`reply_drain_seconds`).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncGenerator, Callable, Coroutine
from contextlib import aclosing
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Protocol, TypeVar

from chat.domain import (
    AdminRequired,
    Chat,
    ChatNotFound,
    Exchange,
    IdempotencyKeyReused,
    Message,
    Model,
    ModelDisabled,
    ModelNameTaken,
    ModelNotFound,
    UnknownModel,
    check_content,
    check_price,
    check_provider,
    clean_model_name,
    clean_query,
    clean_title,
    history_window,
)
from chat.repository import ChatUnitOfWork, SearchQuery
from medstation_llm.errors import ModelTimeout, ModelUnavailable
from medstation_llm.model import LanguageModel
from medstation_llm.token_estimate import estimate_tokens
from medstation_llm.types import ChatRequest, ChatTurn, Completion, PatientChart, TextDelta
from medstation_platform import errors
from medstation_platform.auth.principal import Principal
from medstation_platform.pagination import JsonScalar, Page, PageTokenCodec, resolve_page_size

T = TypeVar("T")
V = TypeVar("V")
StreamItem = str | Exchange  # a piece of the reply's text, then the stored exchange

SYSTEM_PROMPT = (
    "You are MedStation's assistant for clinicians. Answer concisely and accurately. When a"
    " patient's chart is provided, ground your answers in it and say when it does not hold"
    " the answer. You support clinical judgement; you do not replace it."
)
# The provider enforces the request's timeout; this backstop only catches one that does not.
_TIMEOUT_BACKSTOP_SECONDS = 1.0


class LanguageModels(Protocol):
    def language_model(self, provider: str) -> LanguageModel: ...


class PatientRecords(Protocol):
    """The patient-record service, asked as the caller; PatientNotFound when the patient
    does not exist or the caller is not on its care team."""

    async def check_access(self, principal: Principal, patient_id: str) -> None: ...
    async def chart(
        self, principal: Principal, patient_id: str, *, today: date
    ) -> PatientChart: ...


class RateLimiter(Protocol):
    async def acquire(self, user_id: str) -> None:
        """Counts one message; RateLimited when the user has sent too many."""
        ...


class DetachedWork(Protocol):
    def start(self, work: Coroutine[Any, Any, None]) -> object: ...


@dataclass(frozen=True)
class ConversationLimits:
    history_max_messages: int = 20
    history_max_chars: int = 48_000
    max_output_tokens: int = 1024


@dataclass(frozen=True)
class Chats:
    """The chat service's collaborators, built once by `bootstrap`."""

    unit_of_work: Callable[[], ChatUnitOfWork]
    language_models: LanguageModels
    patients: PatientRecords
    rate_limiter: RateLimiter
    detached: DetachedWork
    page_tokens: PageTokenCodec
    limits: ConversationLimits
    # Seconds a model call may take now: the configured limit or the caller's deadline.
    reply_timeout: Callable[[], float]
    clock: Callable[[], datetime]


@dataclass(frozen=True)
class PageRequest:
    page_size: int
    page_token: str


@dataclass(frozen=True)
class ModelDetails:
    name: str
    provider: str
    price_per_million_tokens: float
    enabled: bool


@dataclass(frozen=True)
class ModelChanges:
    """The fields an update sets; None leaves a field as it is."""

    name: str | None = None
    provider: str | None = None
    price_per_million_tokens: float | None = None
    enabled: bool | None = None


@dataclass(frozen=True)
class ChatDetails:
    title: str
    model_id: str
    patient_id: str  # "" for a chat about no patient


# ---- the model catalogue ----


async def list_models(chats: Chats, principal: Principal, page: PageRequest) -> Page[Model]:
    """Every model for admins; the enabled ones for everyone else."""
    limit = resolve_page_size(page.page_size)
    view = "all" if principal.is_admin else "enabled"
    scope = _scope("models", principal.user_id, view)
    after = _cursor(chats, scope, page.page_token, _time_cursor)
    async with chats.unit_of_work() as uow:
        models = await uow.models.list_page(
            enabled_only=not principal.is_admin, after=after, limit=limit + 1
        )
    return _paginate(chats, scope, models, limit, lambda m: [m.created_at.isoformat(), m.id])


async def create_model(chats: Chats, principal: Principal, details: ModelDetails) -> Model:
    _require_admin(principal)
    now = chats.clock()
    model = Model(
        id=str(uuid.uuid4()),
        name=clean_model_name(details.name),
        provider=check_provider(details.provider),
        price_per_million_tokens=check_price(details.price_per_million_tokens),
        enabled=details.enabled,
        created_at=now,
        updated_at=now,
    )
    async with chats.unit_of_work() as uow:
        await uow.models.add(model)
        await uow.commit()
    return model


async def update_model(
    chats: Chats, principal: Principal, model_id: str, changes: ModelChanges
) -> Model:
    _require_admin(principal)
    wanted = _model_changes(changes)
    async with chats.unit_of_work() as uow:
        model = await uow.models.get(model_id)
        if model is None:
            raise ModelNotFound()
        changed = {f: value for f, value in wanted.items() if getattr(model, f) != value}
        if changed:
            model = model.changed(chats.clock(), **changed)
            try:
                await uow.models.save(model)
            except ModelNameTaken:
                raise ModelNameTaken("model.name") from None
            await uow.commit()
    return model


def _model_changes(changes: ModelChanges) -> dict[str, Any]:
    """The validated new values, named like the Model fields they replace."""
    wanted: dict[str, Any] = {}
    if changes.name is not None:
        wanted["name"] = clean_model_name(changes.name, field="model.name")
    if changes.provider is not None:
        wanted["provider"] = check_provider(changes.provider, field="model.provider")
    if changes.price_per_million_tokens is not None:
        wanted["price_per_million_tokens"] = check_price(
            changes.price_per_million_tokens, field="model.price_per_million_tokens"
        )
    if changes.enabled is not None:
        wanted["enabled"] = changes.enabled
    return wanted


# ---- chats ----


async def create_chat(chats: Chats, principal: Principal, details: ChatDetails) -> Chat:
    title = clean_title(details.title)
    async with chats.unit_of_work() as uow:
        await _usable_model(uow, details.model_id, field="model_id")
    if details.patient_id:
        # Outside any transaction: no connection is held while another service answers.
        await chats.patients.check_access(principal, details.patient_id)
    now = chats.clock()
    chat = Chat(
        id=str(uuid.uuid4()),
        owner_id=principal.user_id,
        title=title,
        model_id=details.model_id,
        patient_id=details.patient_id or None,
        created_at=now,
        updated_at=now,
    )
    async with chats.unit_of_work() as uow:
        await _usable_model(uow, details.model_id, field="model_id")  # still enabled?
        await uow.chats.add(chat)
        await uow.commit()
    return chat


async def list_chats(chats: Chats, principal: Principal, page: PageRequest) -> Page[Chat]:
    """The caller's chats, newest first."""
    limit = resolve_page_size(page.page_size)
    scope = _scope("chats", principal.user_id)
    after = _cursor(chats, scope, page.page_token, _time_cursor)
    async with chats.unit_of_work() as uow:
        found = await uow.chats.list_page(principal.user_id, after=after, limit=limit + 1)
    listed = _paginate(chats, scope, found, limit, lambda c: [c.created_at.isoformat(), c.id])
    allowed = await _patients_still_allowed(chats, principal, [c.patient_id for c in listed.items])
    # A page may come out shorter than asked: its token still continues after its last chat.
    return Page([c for c in listed.items if c.patient_id in allowed], listed.next_page_token)


async def get_chat(chats: Chats, principal: Principal, chat_id: str) -> Chat:
    async with chats.unit_of_work() as uow:
        chat = await _own_chat(uow, principal, chat_id)
    if chat.patient_id is not None:  # still on the care team? (the title may name them)
        await chats.patients.check_access(principal, chat.patient_id)
    return chat


async def update_chat(
    chats: Chats, principal: Principal, chat_id: str, *, title: str | None
) -> Chat:
    new_title = None if title is None else clean_title(title, field="chat.title")
    async with chats.unit_of_work() as uow:
        chat = await _own_chat(uow, principal, chat_id, lock=True)
        if new_title is not None and new_title != chat.title:
            chat = replace(chat, title=new_title, updated_at=chats.clock())
            await uow.chats.save(chat)
            await uow.commit()
    return chat


async def delete_chat(chats: Chats, principal: Principal, chat_id: str) -> None:
    """A soft delete: the chat and its messages vanish from every RPC but stay stored."""
    async with chats.unit_of_work() as uow:
        deleted = await uow.chats.soft_delete(chat_id, owner_id=principal.user_id, at=chats.clock())
        if not deleted:
            raise ChatNotFound()
        await uow.commit()


# ---- messages ----


@dataclass(frozen=True)
class _Turn:
    """One exchange, every check passed: the user's message to store and what to ask."""

    chat: Chat
    user_message: Message
    model: LanguageModel
    request: ChatRequest


async def send_message(
    chats: Chats, principal: Principal, chat_id: str, content: str, *, request_id: str
) -> Exchange:
    """Both stored messages; a repeated request_id returns the first pair unchanged."""
    content = check_content(content)
    if request_id:
        first = await _first_exchange(chats, principal, chat_id, content, request_id)
        if first is not None:
            return first
    turn = await _prepare(chats, principal, chat_id, content, request_id=request_id or None)
    async with aclosing(_reply(chats, turn)) as reply:
        async for item in reply:
            if isinstance(item, Exchange):
                return item
    raise AssertionError("a reply always ends with its exchange or an error")


async def stream_message(
    chats: Chats, principal: Principal, chat_id: str, content: str
) -> AsyncGenerator[StreamItem]:
    """The reply's text as the model writes it, then the stored exchange.

    Every check (chat, model, patient, rate) runs before the first item, and the first
    item waits for the model's first output, so most failures arrive before anything else.
    """
    turn = await _prepare(chats, principal, chat_id, check_content(content), request_id=None)
    async for item in _reply(chats, turn):
        yield item


async def list_messages(
    chats: Chats, principal: Principal, chat_id: str, page: PageRequest
) -> Page[Message]:
    """A chat's messages, oldest first."""
    limit = resolve_page_size(page.page_size)
    scope = _scope("messages", principal.user_id, chat_id)
    after = _cursor(chats, scope, page.page_token, _seq_cursor)
    async with chats.unit_of_work() as uow:
        chat = await _own_chat(uow, principal, chat_id)
    if chat.patient_id is not None:  # still on the care team?
        await chats.patients.check_access(principal, chat.patient_id)
    async with chats.unit_of_work() as uow:
        rows = await uow.messages.list_page(chat_id, after_seq=after, limit=limit + 1)
    page_rows = _paginate(chats, scope, rows, limit, lambda row: [row[1]])
    return Page([message for message, _ in page_rows.items], page_rows.next_page_token)


async def search_messages(
    chats: Chats, principal: Principal, query: str, page: PageRequest
) -> Page[Message]:
    """The caller's messages in live chats that match `query`, best match first."""
    text = clean_query(query)
    limit = resolve_page_size(page.page_size)
    scope = _scope("search", principal.user_id, text)
    after = _cursor(chats, scope, page.page_token, _search_cursor)
    async with chats.unit_of_work() as uow:
        hits = await uow.messages.search(SearchQuery(principal.user_id, text, after, limit + 1))
    hits_page = _paginate(
        chats,
        scope,
        hits,
        limit,
        lambda hit: [hit.rank, hit.message.created_at.isoformat(), hit.message.id],
    )
    allowed = await _patients_still_allowed(
        chats, principal, [hit.patient_id for hit in hits_page.items]
    )
    # A page may come out shorter than asked: its token still continues after its last hit.
    visible = [hit.message for hit in hits_page.items if hit.patient_id in allowed]
    return Page(visible, hits_page.next_page_token)


async def _patients_still_allowed(
    chats: Chats, principal: Principal, patients: list[str | None]
) -> set[str | None]:
    """Those of `patients` whose care team still has the caller (None: no patient).

    A chat about a patient, its title and its messages are part of the patient's record:
    someone who has left the care team must stop seeing them, in lists and search too.
    """
    patient_ids = sorted({patient_id for patient_id in patients if patient_id is not None})

    async def allowed(patient_id: str) -> str | None:
        try:
            await chats.patients.check_access(principal, patient_id)
        except errors.NotFound:
            return None
        return patient_id

    found = await asyncio.gather(*(allowed(patient_id) for patient_id in patient_ids))
    return {None, *(patient_id for patient_id in found if patient_id is not None)}


# ---- one exchange ----


async def _first_exchange(
    chats: Chats, principal: Principal, chat_id: str, content: str, request_id: str
) -> Exchange | None:
    """What the first request with this request_id stored, if it stored anything."""
    async with chats.unit_of_work() as uow:
        await _own_chat(uow, principal, chat_id)
        first = await uow.messages.by_request(principal.user_id, request_id)
        return None if first is None else await _replayed(uow, first, chat_id, content)


async def _prepare(
    chats: Chats, principal: Principal, chat_id: str, content: str, *, request_id: str | None
) -> _Turn:
    """The checks before the model is asked, and the request to ask it."""
    now = chats.clock()
    async with chats.unit_of_work() as uow:
        chat = await _own_chat(uow, principal, chat_id)
        model = await uow.models.get(chat.model_id)
        if model is None or not model.enabled:
            raise ModelDisabled()
        previous = await uow.messages.latest(chat.id, limit=chats.limits.history_max_messages)
    language_model = chats.language_models.language_model(model.provider)  # configured?
    # Retries of a stored exchange are free (send_message answers them first).
    await chats.rate_limiter.acquire(principal.user_id)
    chart = None
    if chat.patient_id is not None:
        chart = await chats.patients.chart(principal, chat.patient_id, today=now.date())
    window = history_window(
        previous,
        max_messages=chats.limits.history_max_messages,
        max_chars=chats.limits.history_max_chars,
    )
    request = ChatRequest(
        model=model.name,
        messages=[
            *(ChatTurn(message.role, message.content) for message in window),
            ChatTurn("user", content),
        ],
        timeout_seconds=chats.reply_timeout(),
        max_output_tokens=chats.limits.max_output_tokens,
        system=SYSTEM_PROMPT,
        patient=chart,
    )
    user_message = Message(
        id=str(uuid.uuid4()),
        chat_id=chat.id,
        owner_id=principal.user_id,
        role="user",
        content=content,
        # Providers count the tokens of a whole request, never of one message in it.
        token_count=max(1, estimate_tokens(content)),
        created_at=now,
        request_id=request_id,
    )
    return _Turn(chat, user_message, language_model, request)


async def _reply(chats: Chats, turn: _Turn) -> AsyncGenerator[StreamItem]:
    """Relays what the detached writer produces; leaving early does not stop the writer."""
    produced: asyncio.Queue[StreamItem | BaseException] = asyncio.Queue()
    chats.detached.start(_write_reply(chats, turn, produced.put_nowait))
    while True:
        item = await produced.get()
        if isinstance(item, BaseException):
            raise item
        yield item
        if isinstance(item, Exchange):
            return


async def _write_reply(
    chats: Chats, turn: _Turn, emit: Callable[[StreamItem | BaseException], None]
) -> None:
    try:
        completion = await _generate(turn, emit)
        exchange = await _store(chats, turn, completion)
    except asyncio.CancelledError:
        emit(ModelUnavailable("the reply was interrupted; retry"))
        raise
    except Exception as error:  # the RPC, if it is still there, reports it
        emit(error)
        return
    emit(exchange)


async def _generate(turn: _Turn, emit: Callable[[StreamItem], None]) -> Completion:
    completion = None
    try:
        async with asyncio.timeout(turn.request.timeout_seconds + _TIMEOUT_BACKSTOP_SECONDS):
            async for event in turn.model.stream(turn.request):
                if isinstance(event, TextDelta):
                    if event.text:
                        emit(event.text)
                else:
                    completion = event
    except TimeoutError:
        raise ModelTimeout() from None
    if completion is None:
        raise ModelUnavailable("the language model ended its reply without finishing it")
    return completion


async def _store(chats: Chats, turn: _Turn, completion: Completion) -> Exchange:
    """Both messages in one transaction, or neither."""
    user = turn.user_message
    now = chats.clock()
    assistant = Message(
        id=str(uuid.uuid4()),
        chat_id=user.chat_id,
        owner_id=user.owner_id,
        role="assistant",
        content=completion.text,
        token_count=max(completion.output_tokens, 0),
        created_at=max(now, user.created_at),
        reply_to=user.id,
    )
    async with chats.unit_of_work() as uow:
        chat = await uow.chats.lock(user.chat_id, owner_id=user.owner_id)
        if chat is None:  # deleted while the model wrote: keep nothing
            raise ChatNotFound()
        if user.request_id is not None:
            # A concurrent twin of this request may have stored its pair while we waited.
            first = await uow.messages.by_request(user.owner_id, user.request_id)
            if first is not None:
                return await _replayed(uow, first, user.chat_id, user.content)
        await uow.messages.add(user)
        await uow.messages.add(assistant)
        await uow.chats.save(replace(chat, updated_at=assistant.created_at))
        await uow.commit()
    return Exchange(user, assistant)


async def _replayed(uow: ChatUnitOfWork, first: Message, chat_id: str, content: str) -> Exchange:
    if first.chat_id != chat_id or first.content != content:
        raise IdempotencyKeyReused()
    reply = await uow.messages.reply_to(first.id)
    if reply is None:  # pragma: no cover - the pair is stored in one transaction
        raise errors.Aborted()
    return Exchange(first, reply)


# ---- shared steps ----


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise AdminRequired()


async def _own_chat(
    uow: ChatUnitOfWork, principal: Principal, chat_id: str, *, lock: bool = False
) -> Chat:
    find = uow.chats.lock if lock else uow.chats.get
    chat = await find(chat_id, owner_id=principal.user_id)
    if chat is None:
        raise ChatNotFound()
    return chat


async def _usable_model(uow: ChatUnitOfWork, model_id: str, *, field: str) -> Model:
    model = await uow.models.get(model_id)
    if model is None:
        raise UnknownModel()
    if not model.enabled:
        raise ModelDisabled(field)
    return model


def _scope(*parts: str) -> str:
    """What a page token is bound to: the list, the caller, and the list's parameters."""
    return json.dumps(parts, separators=(",", ":"))


def _cursor(
    chats: Chats, scope: str, token: str, parse: Callable[[list[JsonScalar]], V]
) -> V | None:
    if not token:
        return None
    key = chats.page_tokens.decode(scope, token)
    try:
        return parse(key)
    except (ValueError, TypeError):
        # Signed by us for this scope, yet malformed: a token from an older release.
        raise errors.InvalidPageToken() from None


def _paginate(
    chats: Chats, scope: str, items: list[T], limit: int, cursor: Callable[[T], list[JsonScalar]]
) -> Page[T]:
    """The page (the repository fetched one extra row to learn whether more follow)."""
    if len(items) <= limit:
        return Page(items, "")
    items = items[:limit]
    return Page(items, chats.page_tokens.encode(scope, cursor(items[-1])))


def _time_cursor(key: list[JsonScalar]) -> tuple[datetime, str]:
    at, last_id = key
    return datetime.fromisoformat(str(at)), str(uuid.UUID(str(last_id)))


def _seq_cursor(key: list[JsonScalar]) -> int:
    [seq] = key
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise TypeError("a message position must be an integer")
    return seq


def _search_cursor(key: list[JsonScalar]) -> tuple[float, datetime, str]:
    rank, at, last_id = key
    if isinstance(rank, bool) or not isinstance(rank, int | float):
        raise TypeError("a rank must be a number")
    return float(rank), datetime.fromisoformat(str(at)), str(uuid.UUID(str(last_id)))
