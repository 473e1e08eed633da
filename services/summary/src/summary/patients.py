"""The patient-record service as the summary service sees it: a patient's chart, read over
gRPC as the person asking, so that care-team rules and the PHI audit trail apply to them.

This service never reads the patient database.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from datetime import UTC, date

import grpc

from medstation.patient.v1 import patient_service_pb2 as pb
from medstation.patient.v1 import patient_service_pb2_grpc as pb_grpc
from medstation_platform.auth.principal import Principal
from summary.domain import (
    Chart,
    ChartTooLarge,
    CredentialsRejected,
    Note,
    PatientNotFound,
    PatientServiceTimeout,
    PatientServiceUnavailable,
)

logger = logging.getLogger(__name__)

_SERVICE = pb.DESCRIPTOR.services_by_name["PatientRecordService"].full_name
# Idempotent reads: gRPC may retry them transparently when the service is UNAVAILABLE.
READ_METHODS = (f"{_SERVICE}/GetPatient", f"{_SERVICE}/ListNotes")
NOTES_PAGE_SIZE = 100  # the most the patient-record service returns in one page
_SMALLEST_TIMEOUT = 0.001


class PatientRecords:
    """Reads charts through a channel from `medstation_platform.rpc.client.open_channel`."""

    def __init__(self, channel: grpc.aio.Channel, *, max_notes: int) -> None:
        self._stub = pb_grpc.PatientRecordServiceStub(channel)
        self._max_notes = max_notes

    async def check_visible(
        self, caller: Principal, patient_id: str, *, timeout_seconds: float
    ) -> None:
        """PatientNotFound unless the caller may see the patient (care team or admin)."""
        await self._patient(caller, patient_id, time.monotonic() + timeout_seconds)

    async def chart(self, caller: Principal, patient_id: str, *, timeout_seconds: float) -> Chart:
        """The patient and every one of its notes, newest first, within `timeout_seconds`."""
        deadline = time.monotonic() + timeout_seconds
        patient = await self._patient(caller, patient_id, deadline)
        notes: list[Note] = []
        request = pb.ListNotesRequest(patient_id=patient_id, page_size=NOTES_PAGE_SIZE)
        while True:
            with _translated():
                page = await self._stub.ListNotes(
                    request, metadata=_as(caller), timeout=_left(deadline)
                )
            notes += [_note(note) for note in page.notes]
            if len(notes) > self._max_notes:
                raise ChartTooLarge(self._max_notes)
            if not page.next_page_token:
                break
            request.page_token = page.next_page_token
        return Chart(
            patient_id=patient.id,
            date_of_birth=date.fromisoformat(patient.date_of_birth),
            sex=patient.sex,
            notes=tuple(notes),
        )

    async def _patient(self, caller: Principal, patient_id: str, deadline: float) -> pb.Patient:
        with _translated():
            return await self._stub.GetPatient(
                pb.GetPatientRequest(id=patient_id), metadata=_as(caller), timeout=_left(deadline)
            )


def _as(caller: Principal) -> tuple[tuple[str, str]]:
    # Explicit rather than left to the channel: the worker acts for a job's creator
    # outside of any RPC of theirs.
    return (("authorization", f"Bearer {caller.token}"),)


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), _SMALLEST_TIMEOUT)


def _note(note: pb.Note) -> Note:
    return Note(id=note.id, content=note.content, note_time=note.note_time.ToDatetime(tzinfo=UTC))


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """The patient-record service's answers as this service's domain errors."""
    try:
        yield
    except grpc.aio.AioRpcError as error:
        code = error.code()
        if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED):
            raise PatientNotFound() from None
        if code == grpc.StatusCode.UNAUTHENTICATED:
            raise CredentialsRejected() from None
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise PatientServiceTimeout() from None
        logger.warning(
            "patient record service call failed",
            extra={"grpc_code": code.name, "details": error.details()},
        )
        raise PatientServiceUnavailable() from None
