"""The patient-record service as the chat service needs it: may the caller see a patient,
and the patient's chart for the model — always asked as the caller, over gRPC.

Every call carries the caller's own token, so the care-team rule and the PHI audit trail
apply to the real person; the channel (medstation_platform.rpc.client.open_channel)
bounds every call by the caller's remaining deadline. No patient data is logged.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date
from typing import TYPE_CHECKING

import grpc

from chat.domain import PatientNotFound, PatientRecordsUnavailable, age_in_years, notes_within
from medstation.patient.v1 import patient_service_pb2 as pb
from medstation.patient.v1 import patient_service_pb2_grpc as pb_grpc
from medstation_llm.types import ChartNote, PatientChart
from medstation_platform import errors
from medstation_platform.auth.principal import Principal

if TYPE_CHECKING:
    from medstation.patient.v1.patient_service_pb2_grpc import PatientRecordServiceAsyncStub

logger = logging.getLogger(__name__)

SERVICE = "medstation.patient.v1.PatientRecordService"
# Idempotent reads: gRPC may retry them transparently when the service is unavailable.
RETRYABLE_METHODS = (f"{SERVICE}/GetPatient", f"{SERVICE}/ListNotes")
Metadata = tuple[tuple[str, str], ...]


class GrpcPatientRecords:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        timeout_seconds: float,
        max_notes: int,
        max_chars: int,
    ) -> None:
        self._stub: PatientRecordServiceAsyncStub = pb_grpc.PatientRecordServiceStub(channel)
        self._timeout = timeout_seconds
        self._max_notes = max_notes
        self._max_chars = max_chars

    async def check_access(self, principal: Principal, patient_id: str) -> None:
        await self._patient(_as(principal), patient_id)

    async def chart(self, principal: Principal, patient_id: str, *, today: date) -> PatientChart:
        """Age, sex, birth date and the newest notes within the budget; never the name."""
        caller = _as(principal)
        patient, notes = await asyncio.gather(
            self._patient(caller, patient_id), self._notes(caller, patient_id)
        )
        try:
            born = date.fromisoformat(patient.date_of_birth)
        except ValueError:
            raise _unavailable("the patient-record service sent a malformed birth date") from None
        kept = notes_within([note.content for note in notes], self._max_chars)
        return PatientChart(
            age_years=age_in_years(born, today),
            sex=patient.sex,
            date_of_birth=born,
            as_of=today,
            notes=[
                ChartNote(note.note_time.ToDatetime(tzinfo=UTC), content)
                for note, content in zip(notes, kept, strict=False)
            ],
        )

    async def _patient(self, caller: Metadata, patient_id: str) -> pb.Patient:
        try:
            return await self._stub.GetPatient(
                pb.GetPatientRequest(id=patient_id), timeout=self._timeout, metadata=caller
            )
        except grpc.aio.AioRpcError as error:
            raise _translated(error) from None

    async def _notes(self, caller: Metadata, patient_id: str) -> list[pb.Note]:
        if self._max_notes == 0:
            return []
        request = pb.ListNotesRequest(patient_id=patient_id, page_size=self._max_notes)
        try:
            page = await self._stub.ListNotes(request, timeout=self._timeout, metadata=caller)
        except grpc.aio.AioRpcError as error:
            raise _translated(error) from None
        return list(page.notes)  # newest note_time first


def _as(principal: Principal) -> Metadata:
    return (("authorization", f"Bearer {principal.token}"),)


def _translated(error: grpc.aio.AioRpcError) -> errors.DomainError:
    """The patient-record service's answer in our caller's terms."""
    code = error.code()
    if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED):
        return PatientNotFound()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return errors.Unauthenticated("the access token was not accepted")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return errors.DeadlineExceeded("patient records did not answer in time")
    return _unavailable(f"patient-record service answered {code.name}")


def _unavailable(why: str) -> PatientRecordsUnavailable:
    # Codes and our own words only: the details of another service stay out of logs.
    logger.warning("patient records unavailable", extra={"cause": why})
    return PatientRecordsUnavailable()
