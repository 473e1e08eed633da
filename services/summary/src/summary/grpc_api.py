"""SummaryService over gRPC: translate proto ⇄ domain and call one use case per RPC."""

from __future__ import annotations

from collections.abc import AsyncIterator

from medstation.summary.v1 import summary_service_pb2 as pb
from medstation.summary.v1 import summary_service_pb2_grpc as pb_grpc
from medstation_platform.auth.principal import require_principal
from medstation_platform.proto_time import to_timestamp
from medstation_platform.rpc.interceptors import Context
from summary import use_cases
from summary.domain import Summary, SummaryJob
from summary.use_cases import PageRequest, Summaries

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SummaryService"].full_name
PUBLIC_METHODS: frozenset[str] = frozenset()  # every call is about PHI: all need a token


def summary_to_proto(summary: Summary) -> pb.Summary:
    return pb.Summary(
        id=summary.id,
        patient_id=summary.patient_id,
        text=summary.text,
        patient_age=summary.patient_age,
        note_count=summary.note_count,
        provider=summary.provider,
        model=summary.model,
        generated_at=to_timestamp(summary.generated_at),
        latency_ms=summary.latency_ms,
    )


def job_to_proto(job: SummaryJob) -> pb.SummaryJob:
    message = pb.SummaryJob(
        id=job.id,
        patient_id=job.patient_id,
        state=job.state.value,
        error=job.error,
        created_at=to_timestamp(job.created_at),
        updated_at=to_timestamp(job.updated_at),
    )
    if job.summary is not None:
        message.summary.CopyFrom(summary_to_proto(job.summary))
    return message


class SummaryServicer(pb_grpc.SummaryServiceServicer):
    def __init__(self, summaries: Summaries) -> None:
        self._summaries = summaries

    async def GetSummary(self, request: pb.GetSummaryRequest, context: Context) -> pb.Summary:
        summary = await use_cases.get_summary(
            self._summaries, require_principal(), request.patient_id
        )
        return summary_to_proto(summary)

    async def CreateSummaryJob(
        self, request: pb.CreateSummaryJobRequest, context: Context
    ) -> pb.SummaryJob:
        job = await use_cases.create_summary_job(
            self._summaries, require_principal(), request.patient_id, request_id=request.request_id
        )
        return job_to_proto(job)

    async def GetSummaryJob(
        self, request: pb.GetSummaryJobRequest, context: Context
    ) -> pb.SummaryJob:
        job = await use_cases.get_summary_job(self._summaries, require_principal(), request.id)
        return job_to_proto(job)

    async def WatchSummaryJob(
        self, request: pb.WatchSummaryJobRequest, context: Context
    ) -> AsyncIterator[pb.SummaryJob]:
        jobs = use_cases.watch_summary_job(self._summaries, require_principal(), request.id)
        async for job in jobs:
            yield job_to_proto(job)

    async def ListSummaries(
        self, request: pb.ListSummariesRequest, context: Context
    ) -> pb.ListSummariesResponse:
        page = await use_cases.list_summaries(
            self._summaries,
            require_principal(),
            request.patient_id,
            PageRequest(request.page_size, request.page_token),
        )
        return pb.ListSummariesResponse(
            summaries=[summary_to_proto(summary) for summary in page.items],
            next_page_token=page.next_page_token,
        )
