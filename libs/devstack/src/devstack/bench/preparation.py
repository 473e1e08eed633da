"""Before measuring: which services are up, channels to them, and the data they need."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import grpc.aio

from devstack.api_session import ApiSession
from devstack.bench.chat_data import QUESTIONS, ensure_bench_chats
from devstack.bench.dataset import (
    BenchData,
    BenchDataError,
    ensure_bench_data,
    ensure_scratch_patients,
)
from devstack.bench.plan import OPTIONAL_SERVICES, Endpoints
from devstack.bench.scenarios import CHAT_SERVICE, PATIENT_SERVICE, SUMMARY_SERVICE, GrpcTargets
from devstack.bench.summary_data import reuse_pool, warm_summaries
from devstack.services import service_by_key
from devstack.stack_probe import require_service, service_status
from medstation.chat.v1 import chat_service_pb2_grpc as chat_grpc
from medstation.patient.v1 import patient_service_pb2_grpc as patient_grpc
from medstation.summary.v1 import summary_service_pb2_grpc as summary_grpc
from medstation.user.v1 import user_service_pb2_grpc as user_grpc


async def services_up(endpoints: Endpoints) -> frozenset[str]:
    """The optional services serving; a required one that is not raises StackNotRunningError."""
    up = set()
    for key in OPTIONAL_SERVICES:
        address = endpoints.address(key)
        if address is None:
            continue
        proto_service = service_by_key(key).proto_service
        if endpoints.required(key):
            await require_service(key, address, proto_service)
            up.add(key)
        elif await service_status(address, proto_service) == "SERVING":
            up.add(key)
    return frozenset(up)


async def open_targets(
    channels: contextlib.AsyncExitStack, endpoints: Endpoints, up: frozenset[str]
) -> tuple[grpc.aio.Channel, GrpcTargets]:
    """The user service's channel (for signing in), and stubs of every service up."""

    async def channel(key: str) -> grpc.aio.Channel | None:
        address = endpoints.address(key)
        if key not in up or address is None:
            return None
        return await channels.enter_async_context(grpc.aio.insecure_channel(address))

    user_channel = await channels.enter_async_context(
        grpc.aio.insecure_channel(endpoints.user_addr)
    )
    patient_channel = await channel(PATIENT_SERVICE)
    summary_channel = await channel(SUMMARY_SERVICE)
    chat_channel = await channel(CHAT_SERVICE)
    targets = GrpcTargets(
        user_grpc.UserServiceStub(user_channel),
        patient_grpc.PatientRecordServiceStub(patient_channel) if patient_channel else None,
        summary_grpc.SummaryServiceStub(summary_channel) if summary_channel else None,
        chat_grpc.ChatServiceStub(chat_channel) if chat_channel else None,
    )
    return user_channel, targets


async def prepare_data(
    session: ApiSession,
    targets: GrpcTargets,
    *,
    patients: int,
    chats: int,
    warm_summaries_first: bool,
    scratch_patients: int = 0,
) -> BenchData:
    """Bench patients (0: none), `chats` bench chats (0: none), the reuse scenario's
    patients summarized when asked, and `scratch_patients` for CreateNote (0: none). A
    call that fails raises BenchDataError."""
    try:
        data = await _prepare(session, targets, patients, chats, warm_summaries_first)
        if scratch_patients:
            patient_stub = targets.patient_stub()
            scratch = await ensure_scratch_patients(session, patient_stub, scratch_patients)
            data = replace(data, note_patient_ids=scratch)
        return data
    except grpc.aio.AioRpcError as error:
        raise BenchDataError(
            f"preparing the bench data failed: {error.code().name}: {error.details()}"
        ) from error


async def _prepare(
    session: ApiSession,
    targets: GrpcTargets,
    patients: int,
    chats: int,
    warm_summaries_first: bool,
) -> BenchData:
    data = await ensure_bench_data(session, targets.patients if patients else None, patients)
    if chats:
        chat_ids = await ensure_bench_chats(session, targets.chat_stub(), data.patient_ids, chats)
        data = replace(data, chat_ids=chat_ids, questions=QUESTIONS)
    if warm_summaries_first and data.patient_ids:
        summarized = reuse_pool(data.patient_ids)
        await warm_summaries(session, targets.summary_stub(), summarized)
        data = replace(data, summarized_patient_ids=summarized)
    return data
