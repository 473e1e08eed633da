"""The chat scenarios' data: a few bench chats with the offline model, and their questions.

Chats are found again by title on a re-run (one ListChats page or two), so their history
is already as long as the model ever sees (the newest 20 messages): every measured
message then costs the same, instead of the first ones of a new chat being cheaper.
When the patient-record service is up, each chat is about one bench patient, so the
assistant reads that chart on every message, as a clinician's chat would.

The chat service limits how many messages one user sends per window (a product
feature: MEDSTATION_RATE_LIMIT_MESSAGES per MEDSTATION_RATE_LIMIT_WINDOW_SECONDS, 30 per
60 s by default). A benchmark sends hundreds per second as one user, so it needs the
stack started with the limit raised; `send_limit` reads what the running service has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from devstack.api_session import ApiSession
from devstack.bench.dataset import BenchDataError
from devstack.bench.processes import process_listening_on
from medstation.chat.v1 import chat_service_pb2 as chat_pb
from medstation.chat.v1 import chat_service_pb2_grpc as chat_grpc

OFFLINE_MODEL = "medstation-offline"
CHAT_TITLE_PREFIX = "bench chat "
LIMIT_VARIABLE = "MEDSTATION_RATE_LIMIT_MESSAGES"
WINDOW_VARIABLE = "MEDSTATION_RATE_LIMIT_WINDOW_SECONDS"
# The chat service's defaults (services/chat/src/chat/settings.py), for a process that
# does not set the variables.
DEFAULT_LIMIT = 30
DEFAULT_WINDOW_SECONDS = 60
# What the bench may send as one user, with room to spare on this machine.
REQUIRED_PER_SECOND = 1000
RAISED_LIMIT = 1_000_000
QUESTIONS = (
    "Which medications is the patient taking?",
    "Summarize the latest assessment and plan.",
    "Any allergies documented?",
    "What were the most recent vital signs?",
    "Is there anything to follow up on at the next visit?",
    "Which problems are active right now?",
    "Has the blood pressure been controlled?",
    "What changed since the previous note?",
)
_PAGE_SIZE = 100
_MAX_PAGES = 5
_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class SendLimit:
    messages: int
    window_seconds: int
    source: str  # where the numbers came from, for the report

    @property
    def per_second(self) -> float:
        return self.messages / self.window_seconds

    def describe(self) -> str:
        return f"{self.messages:,} messages per {self.window_seconds} s per user ({self.source})"


def send_limit(chat_addr: str) -> SendLimit | None:
    """The running chat service's per-user send limit; None when its process is not
    readable here (another machine or user): the bench then sends and counts refusals."""
    image = process_listening_on(chat_addr)
    if image is None:
        return None
    try:
        messages = int(image.env.get(LIMIT_VARIABLE, DEFAULT_LIMIT))
        window = int(image.env.get(WINDOW_VARIABLE, DEFAULT_WINDOW_SECONDS))
    except ValueError:
        return None
    source = (
        f"{LIMIT_VARIABLE} in the chat process's environment"
        if LIMIT_VARIABLE in image.env
        else "the chat service's default"
    )
    return SendLimit(messages, max(1, window), source)


def limit_too_low(limit: SendLimit | None) -> str | None:
    """Why the sending scenarios cannot run under this limit, or None if they can."""
    if limit is None or limit.per_second >= REQUIRED_PER_SECOND:
        return None
    return (
        f"the chat service's send limit is {limit.describe()}, which would refuse almost "
        f"every benchmark message; start the stack with {LIMIT_VARIABLE}={RAISED_LIMIT} "
        f"(`{LIMIT_VARIABLE}={RAISED_LIMIT} make run`) to benchmark chat"
    )


async def ensure_bench_chats(
    session: ApiSession,
    chats: chat_grpc.ChatServiceAsyncStub,
    patient_ids: Sequence[str],
    count: int,
) -> tuple[str, ...]:
    """`count` chats of the bench clinician with the offline model, found or created; chat
    i is about patient i when there are patients."""
    model_id = await _offline_model_id(session, chats)
    wanted = {
        f"{CHAT_TITLE_PREFIX}{index + 1}": patient_ids[index % len(patient_ids)]
        if patient_ids
        else ""
        for index in range(count)
    }
    found = await _existing_chats(session, chats, model_id, wanted)
    ids = []
    for title, patient_id in wanted.items():
        if title not in found:
            request = chat_pb.CreateChatRequest(
                title=title, model_id=model_id, patient_id=patient_id
            )
            chat = await chats.CreateChat(
                request, metadata=await session.metadata(), timeout=_TIMEOUT_SECONDS
            )
            found[title] = chat.id
        ids.append(found[title])
    return tuple(ids)


async def _offline_model_id(session: ApiSession, chats: chat_grpc.ChatServiceAsyncStub) -> str:
    page = await chats.ListModels(
        chat_pb.ListModelsRequest(page_size=_PAGE_SIZE),
        metadata=await session.metadata(),
        timeout=_TIMEOUT_SECONDS,
    )
    for model in page.models:
        if model.name == OFFLINE_MODEL and model.enabled:
            return model.id
    raise BenchDataError(f"the chat service offers no enabled model named {OFFLINE_MODEL!r}")


async def _existing_chats(
    session: ApiSession,
    chats: chat_grpc.ChatServiceAsyncStub,
    model_id: str,
    wanted: dict[str, str],
) -> dict[str, str]:
    """Title → id of the bench chats already there (same model and patient)."""
    found: dict[str, str] = {}
    token = ""
    for _ in range(_MAX_PAGES):  # bounded: the bench clinician has only bench chats
        page = await chats.ListChats(
            chat_pb.ListChatsRequest(page_size=_PAGE_SIZE, page_token=token),
            metadata=await session.metadata(),
            timeout=_TIMEOUT_SECONDS,
        )
        for chat in page.chats:
            if (
                wanted.get(chat.title) == chat.patient_id
                and chat.model_id == model_id
                and chat.title not in found
            ):
                found[chat.title] = chat.id
        token = page.next_page_token
        if not token:
            break
    return found
