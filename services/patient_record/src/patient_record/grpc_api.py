"""PatientRecordService over gRPC: translate proto ⇄ domain and call one use case per RPC."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import empty_pb2

from medstation.patient.v1 import patient_service_pb2 as pb
from medstation.patient.v1 import patient_service_pb2_grpc as pb_grpc
from medstation_platform import errors
from medstation_platform.auth.principal import require_principal
from medstation_platform.field_mask import fields_to_update
from medstation_platform.proto_time import to_timestamp
from medstation_platform.rpc.interceptors import Context
from patient_record import use_cases
from patient_record.domain import AuditEvent, Note, Patient
from patient_record.use_cases import (
    NoteDetails,
    PageRequest,
    PatientChanges,
    PatientDetails,
    Records,
)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["PatientRecordService"].full_name
PUBLIC_METHODS: frozenset[str] = frozenset()  # every call is about PHI: all need a token
_UPDATABLE = ("name", "date_of_birth", "sex", "mrn")


def patient_to_proto(patient: Patient) -> pb.Patient:
    return pb.Patient(
        id=patient.id,
        name=patient.name,
        date_of_birth=patient.date_of_birth.isoformat(),
        sex=patient.sex,
        mrn=patient.mrn or "",
        care_team=list(patient.care_team),
        created_at=to_timestamp(patient.created_at),
        updated_at=to_timestamp(patient.updated_at),
    )


def note_to_proto(note: Note) -> pb.Note:
    return pb.Note(
        id=note.id,
        patient_id=note.patient_id,
        author_id=note.author_id,
        content=note.content,
        note_time=to_timestamp(note.note_time),
        created_at=to_timestamp(note.created_at),
    )


def audit_event_to_proto(event: AuditEvent) -> pb.AuditEvent:
    return pb.AuditEvent(
        id=event.id,
        actor_id=event.actor_id,
        action=event.action,
        patient_id=event.patient_id,
        note_id=event.note_id or "",
        occurred_at=to_timestamp(event.occurred_at),
        trace_id=event.trace_id,
    )


def _note_time(request: pb.CreateNoteRequest) -> datetime | None:
    if not request.HasField("note_time"):
        return None
    try:
        return request.note_time.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):  # seconds outside what a datetime can hold
        raise errors.InvalidArgument.for_field("note_time", "is not a valid time") from None


class PatientRecordServicer(pb_grpc.PatientRecordServiceServicer):
    def __init__(self, records: Records) -> None:
        self._records = records

    async def CreatePatient(self, request: pb.CreatePatientRequest, context: Context) -> pb.Patient:
        details = PatientDetails(
            name=request.name, date_of_birth=request.date_of_birth, sex=request.sex, mrn=request.mrn
        )
        patient = await use_cases.create_patient(
            self._records, require_principal(), details, request_id=request.request_id
        )
        return patient_to_proto(patient)

    async def ListPatients(
        self, request: pb.ListPatientsRequest, context: Context
    ) -> pb.ListPatientsResponse:
        page = await use_cases.list_patients(
            self._records,
            require_principal(),
            PageRequest(request.page_size, request.page_token),
            query=request.query,
            order_by=request.order_by,
        )
        return pb.ListPatientsResponse(
            patients=[patient_to_proto(patient) for patient in page.items],
            next_page_token=page.next_page_token,
        )

    async def GetPatient(self, request: pb.GetPatientRequest, context: Context) -> pb.Patient:
        patient = await use_cases.get_patient(self._records, require_principal(), request.id)
        return patient_to_proto(patient)

    async def UpdatePatient(self, request: pb.UpdatePatientRequest, context: Context) -> pb.Patient:
        body = request.patient
        fields = fields_to_update(body, request.update_mask, updatable=_UPDATABLE)
        changes = PatientChanges(
            name=body.name if "name" in fields else None,
            date_of_birth=body.date_of_birth if "date_of_birth" in fields else None,
            sex=body.sex if "sex" in fields else None,
            mrn=body.mrn if "mrn" in fields else None,
        )
        patient = await use_cases.update_patient(
            self._records, require_principal(), body.id, changes
        )
        return patient_to_proto(patient)

    async def DeletePatient(
        self, request: pb.DeletePatientRequest, context: Context
    ) -> empty_pb2.Empty:
        await use_cases.delete_patient(self._records, require_principal(), request.id)
        return empty_pb2.Empty()

    async def AddCareTeamMember(
        self, request: pb.AddCareTeamMemberRequest, context: Context
    ) -> pb.Patient:
        patient = await use_cases.add_care_team_member(
            self._records, require_principal(), request.id, request.user_id
        )
        return patient_to_proto(patient)

    async def RemoveCareTeamMember(
        self, request: pb.RemoveCareTeamMemberRequest, context: Context
    ) -> pb.Patient:
        patient = await use_cases.remove_care_team_member(
            self._records, require_principal(), request.id, request.user_id
        )
        return patient_to_proto(patient)

    async def CreateNote(self, request: pb.CreateNoteRequest, context: Context) -> pb.Note:
        note = await use_cases.create_note(
            self._records,
            require_principal(),
            request.patient_id,
            NoteDetails(content=request.content, note_time=_note_time(request)),
            request_id=request.request_id,
        )
        return note_to_proto(note)

    async def ListNotes(
        self, request: pb.ListNotesRequest, context: Context
    ) -> pb.ListNotesResponse:
        page = await use_cases.list_notes(
            self._records,
            require_principal(),
            request.patient_id,
            PageRequest(request.page_size, request.page_token),
        )
        return pb.ListNotesResponse(
            notes=[note_to_proto(note) for note in page.items],
            next_page_token=page.next_page_token,
        )

    async def GetNote(self, request: pb.GetNoteRequest, context: Context) -> pb.Note:
        note = await use_cases.get_note(
            self._records, require_principal(), request.patient_id, request.id
        )
        return note_to_proto(note)

    async def DeleteNote(self, request: pb.DeleteNoteRequest, context: Context) -> empty_pb2.Empty:
        await use_cases.delete_note(
            self._records, require_principal(), request.patient_id, request.id
        )
        return empty_pb2.Empty()

    async def DeleteAllNotes(
        self, request: pb.DeleteAllNotesRequest, context: Context
    ) -> pb.DeleteAllNotesResponse:
        count = await use_cases.delete_all_notes(
            self._records, require_principal(), request.patient_id
        )
        return pb.DeleteAllNotesResponse(deleted_count=count)

    async def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, context: Context
    ) -> pb.ListAuditEventsResponse:
        page = await use_cases.list_audit_events(
            self._records,
            require_principal(),
            PageRequest(request.page_size, request.page_token),
            patient_id=request.patient_id,
            actor_id=request.actor_id,
        )
        return pb.ListAuditEventsResponse(
            audit_events=[audit_event_to_proto(event) for event in page.items],
            next_page_token=page.next_page_token,
        )
