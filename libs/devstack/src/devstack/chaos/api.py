"""The suite's client: one clinician calling the public API through the gateway over gRPC.

gRPC through Envoy takes the same routes (timeouts, retries, health) as REST after
transcoding, and costs the load generator far less CPU on a machine it shares with the
system it loads. Every call has a deadline.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc
import grpc.aio

from devstack.api_session import ApiSession, Credentials
from medstation.chat.v1 import chat_service_pb2 as chat_pb
from medstation.chat.v1 import chat_service_pb2_grpc as chat_grpc
from medstation.patient.v1 import patient_service_pb2 as patient_pb
from medstation.patient.v1 import patient_service_pb2_grpc as patient_grpc
from medstation.summary.v1 import summary_service_pb2 as summary_pb
from medstation.summary.v1 import summary_service_pb2_grpc as summary_grpc
from medstation.user.v1 import user_service_pb2 as user_pb
from medstation.user.v1 import user_service_pb2_grpc as user_grpc

T = TypeVar("T")
CALL_TIMEOUT_SECONDS = 5.0
# Codes after which the same request may be sent again: nothing was done, or a create
# carries its request_id and so cannot be applied twice.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


@dataclass
class Api:
    """Stubs on one channel to the gateway, and the signed-in clinician's metadata."""

    channel: grpc.aio.Channel
    session: ApiSession
    users: user_grpc.UserServiceAsyncStub
    patients: patient_grpc.PatientRecordServiceAsyncStub
    summaries: summary_grpc.SummaryServiceAsyncStub
    chats: chat_grpc.ChatServiceAsyncStub

    @classmethod
    async def sign_in(cls, gateway_grpc: str) -> Api:
        channel = grpc.aio.insecure_channel(gateway_grpc)
        credentials = Credentials(
            f"chaos-{secrets.token_hex(4)}@chaos.test", "a-long-chaos-password", "Dr Chaos"
        )
        session = ApiSession(channel, credentials)
        await session.sign_in()
        return cls(
            channel,
            session,
            user_grpc.UserServiceStub(channel),
            patient_grpc.PatientRecordServiceStub(channel),
            summary_grpc.SummaryServiceStub(channel),
            chat_grpc.ChatServiceStub(channel),
        )

    async def metadata(self) -> tuple[tuple[str, str], ...]:
        return await self.session.metadata()

    async def close(self) -> None:
        await self.channel.close(None)

    # ---- the calls the scenarios make, each with a deadline ----

    async def users_me(self) -> user_pb.User:
        return await self.users.GetMe(
            user_pb.GetMeRequest(), metadata=await self.metadata(), timeout=CALL_TIMEOUT_SECONDS
        )

    async def create_patient(self, label: str, request_id: str = "") -> patient_pb.Patient:
        request = patient_pb.CreatePatientRequest(
            name=f"Chaos Patient {label}",
            date_of_birth="1961-04-02",
            sex="female",
            request_id=request_id or str(uuid.uuid4()),
        )
        return await self.patients.CreatePatient(
            request, metadata=await self.metadata(), timeout=CALL_TIMEOUT_SECONDS
        )

    async def get_patient(self, patient_id: str) -> patient_pb.Patient:
        return await self.patients.GetPatient(
            patient_pb.GetPatientRequest(id=patient_id),
            metadata=await self.metadata(),
            timeout=CALL_TIMEOUT_SECONDS,
        )

    async def list_patients(self) -> patient_pb.ListPatientsResponse:
        return await self.patients.ListPatients(
            patient_pb.ListPatientsRequest(page_size=20),
            metadata=await self.metadata(),
            timeout=CALL_TIMEOUT_SECONDS,
        )

    async def create_note(
        self, patient_id: str, content: str, request_id: str = ""
    ) -> patient_pb.Note:
        request = patient_pb.CreateNoteRequest(
            patient_id=patient_id, content=content, request_id=request_id or str(uuid.uuid4())
        )
        return await self.patients.CreateNote(
            request, metadata=await self.metadata(), timeout=CALL_TIMEOUT_SECONDS
        )

    async def create_job(self, patient_id: str, request_id: str = "") -> summary_pb.SummaryJob:
        request = summary_pb.CreateSummaryJobRequest(
            patient_id=patient_id, request_id=request_id or str(uuid.uuid4())
        )
        return await self.summaries.CreateSummaryJob(
            request, metadata=await self.metadata(), timeout=CALL_TIMEOUT_SECONDS
        )

    async def get_job(self, job_id: str) -> summary_pb.SummaryJob:
        return await self.summaries.GetSummaryJob(
            summary_pb.GetSummaryJobRequest(id=job_id),
            metadata=await self.metadata(),
            timeout=CALL_TIMEOUT_SECONDS,
        )

    async def list_summaries(self, patient_id: str) -> summary_pb.ListSummariesResponse:
        return await self.summaries.ListSummaries(
            summary_pb.ListSummariesRequest(patient_id=patient_id, page_size=1),
            metadata=await self.metadata(),
            timeout=CALL_TIMEOUT_SECONDS,
        )

    async def first_model_id(self) -> str:
        response = await self.chats.ListModels(
            chat_pb.ListModelsRequest(), metadata=await self.metadata(), timeout=10
        )
        if not response.models:
            raise RuntimeError("the chat service lists no enabled model")
        return str(response.models[0].id)

    async def create_chat(self, model_id: str, patient_id: str = "") -> chat_pb.Chat:
        return await self.chats.CreateChat(
            chat_pb.CreateChatRequest(title="Chaos", model_id=model_id, patient_id=patient_id),
            metadata=await self.metadata(),
            timeout=CALL_TIMEOUT_SECONDS,
        )

    async def send_message(
        self, chat_id: str, content: str, request_id: str = ""
    ) -> chat_pb.SendMessageResponse:
        request = chat_pb.SendMessageRequest(
            chat_id=chat_id, content=content, request_id=request_id or str(uuid.uuid4())
        )
        # A reply is written by a language model: the gateway's model timeout, not 5 s.
        return await self.chats.SendMessage(request, metadata=await self.metadata(), timeout=20)

    async def list_chats(self) -> chat_pb.ListChatsResponse:
        return await self.chats.ListChats(
            chat_pb.ListChatsRequest(page_size=1),
            metadata=await self.metadata(),
            timeout=CALL_TIMEOUT_SECONDS,
        )


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    give_up_after: float,
    on_failure: Callable[[grpc.aio.AioRpcError], None] = lambda error: None,
) -> T:
    """`attempt()` again after a retryable failure (backoff up to 1 s) until `give_up_after`
    seconds have passed; other failures, and the last one, are raised."""
    deadline = time.monotonic() + give_up_after
    delay = 0.1
    while True:
        try:
            return await attempt()
        except grpc.aio.AioRpcError as error:
            on_failure(error)
            if error.code() not in RETRYABLE or time.monotonic() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)
