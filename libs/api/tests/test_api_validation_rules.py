"""protovalidate enforces the API's input rules and names the offending fields."""

from __future__ import annotations

import protovalidate
import pytest
from google.protobuf import field_mask_pb2, message

from medstation.chat.v1 import chat_service_pb2 as chat
from medstation.patient.v1 import patient_service_pb2 as patient
from medstation.summary.v1 import summary_service_pb2 as summary
from medstation.user.v1 import user_service_pb2 as user

SOME_ID = "0b5c3f5e-6d0a-4d7e-9a53-2f1a8c4f2b7d"
GOOD_PASSWORD = "correct horse battery"


def violated_fields(request: message.Message) -> set[str]:
    """Return the dotted path of every field that protovalidate rejects."""
    try:
        protovalidate.validate(request)
    except protovalidate.ValidationError as error:
        paths = [violation.proto.field for violation in error.violations]
        return {
            ".".join(str(element.field_name) for element in (path.elements if path else ()))
            for path in paths
        }
    return set()


@pytest.mark.parametrize(
    ("request_message", "fields"),
    [
        pytest.param(
            user.RegisterRequest(email="not-an-email", password="short", display_name="Ann"),
            {"email", "password"},
            id="register-bad-email-and-short-password",
        ),
        pytest.param(
            user.RegisterRequest(email="a@" + "b" * 250 + ".org", password=GOOD_PASSWORD),
            {"email", "display_name"},
            id="register-overlong-email-and-missing-name",
        ),
        pytest.param(
            user.UpdateMeRequest(user=user.User(password="short")),
            {"user.password"},
            id="update-me-short-password",
        ),
        pytest.param(
            user.UpdateMeRequest(
                user=user.User(display_name="Ann"),
                update_mask=field_mask_pb2.FieldMask(paths=["role"]),
            ),
            {"update_mask"},
            id="update-me-mask-names-server-owned-field",
        ),
        pytest.param(
            user.ListUsersRequest(role="superuser"), {"role"}, id="list-users-unknown-role"
        ),
        pytest.param(
            user.SetRoleRequest(id=SOME_ID, role="CLINICIAN"), {"role"}, id="set-role-wrong-case"
        ),
        pytest.param(user.GetUserRequest(id="me"), {"id"}, id="get-user-id-not-uuid"),
        pytest.param(
            patient.CreatePatientRequest(
                name="Ann Lee", date_of_birth="1980-02-03", sex="SEX_FEMALE"
            ),
            {"sex"},
            id="create-patient-unknown-sex",
        ),
        pytest.param(
            patient.CreatePatientRequest(
                name="", date_of_birth="3 Feb 1980", sex="female", request_id="retry-1"
            ),
            {"name", "date_of_birth", "request_id"},
            id="create-patient-missing-name-bad-date-bad-request-id",
        ),
        pytest.param(
            patient.ListPatientsRequest(page_size=-1), {"page_size"}, id="negative-page-size"
        ),
        pytest.param(patient.ListPatientsRequest(order_by="age"), {"order_by"}, id="unknown-order"),
        pytest.param(
            patient.UpdatePatientRequest(patient=patient.Patient(id=SOME_ID, name="")),
            {"patient.name"},
            id="update-patient-empty-name",
        ),
        pytest.param(
            patient.UpdatePatientRequest(
                patient=patient.Patient(id=SOME_ID),
                update_mask=field_mask_pb2.FieldMask(paths=["care_team"]),
            ),
            {"update_mask"},
            id="update-patient-mask-names-server-owned-field",
        ),
        pytest.param(
            patient.UpdatePatientRequest(patient=patient.Patient(sex="female")),
            {"patient.id"},
            id="update-patient-without-id",
        ),
        pytest.param(
            patient.CreateNoteRequest(patient_id=SOME_ID, content="x" * 100_001),
            {"content"},
            id="note-too-long",
        ),
        pytest.param(
            patient.ListAuditEventsRequest(actor_id="someone"), {"actor_id"}, id="audit-bad-actor"
        ),
        pytest.param(
            summary.CreateSummaryJobRequest(patient_id=SOME_ID, request_id="again"),
            {"request_id"},
            id="summary-job-bad-request-id",
        ),
        pytest.param(
            chat.SendMessageRequest(chat_id=SOME_ID, content=""), {"content"}, id="empty-message"
        ),
        pytest.param(chat.SearchMessagesRequest(query=""), {"query"}, id="empty-search"),
        pytest.param(
            chat.CreateModelRequest(name="m", provider="fake", price_per_million_tokens=-0.5),
            {"price_per_million_tokens"},
            id="negative-price",
        ),
        pytest.param(
            chat.UpdateChatRequest(chat=chat.Chat(id=SOME_ID, title="t" * 201)),
            {"chat.title"},
            id="chat-title-too-long",
        ),
    ],
)
def test_invalid_request_names_each_offending_field(
    request_message: message.Message, fields: set[str]
) -> None:
    assert violated_fields(request_message) == fields


@pytest.mark.parametrize(
    "request_message",
    [
        pytest.param(
            user.RegisterRequest(email="ann@example.org", password=GOOD_PASSWORD, display_name="A"),
            id="register",
        ),
        pytest.param(
            user.UpdateMeRequest(
                user=user.User(password=GOOD_PASSWORD, current_password="old"),
                update_mask=field_mask_pb2.FieldMask(paths=["password"]),
            ),
            id="update-me-password",
        ),
        pytest.param(user.ListUsersRequest(), id="list-users-without-role-filter"),
        pytest.param(user.ListUsersRequest(role="admin", page_size=500), id="list-admins"),
        pytest.param(
            patient.CreatePatientRequest(name="Ann Lee", date_of_birth="1980-02-03", sex="female"),
            id="create-patient-without-mrn-or-request-id",
        ),
        pytest.param(
            patient.CreatePatientRequest(
                name="Ann Lee",
                date_of_birth="1980-02-03",
                sex="unknown",
                mrn="MRN-1",
                request_id=SOME_ID,
            ),
            id="create-patient-with-everything",
        ),
        pytest.param(patient.ListPatientsRequest(), id="list-patients-defaults"),
        pytest.param(
            patient.ListPatientsRequest(query="jon smth", order_by="date_of_birth desc"),
            id="list-patients-query-and-order",
        ),
        pytest.param(
            patient.UpdatePatientRequest(patient=patient.Patient(id=SOME_ID, mrn="")),
            id="update-patient-clears-mrn",
        ),
        pytest.param(patient.ListAuditEventsRequest(), id="audit-without-filters"),
        pytest.param(
            patient.CreateNoteRequest(patient_id=SOME_ID, content="S: cough"), id="create-note"
        ),
        pytest.param(summary.CreateSummaryJobRequest(patient_id=SOME_ID), id="summary-job"),
        pytest.param(chat.CreateChatRequest(model_id=SOME_ID), id="chat-without-patient"),
        pytest.param(
            chat.UpdateChatRequest(
                chat=chat.Chat(id=SOME_ID, title=""),
                update_mask=field_mask_pb2.FieldMask(paths=["title"]),
            ),
            id="chat-title-cleared",
        ),
        pytest.param(
            chat.CreateModelRequest(name="m", provider="fake", price_per_million_tokens=0.0),
            id="free-model",
        ),
    ],
)
def test_valid_request_passes(request_message: message.Message) -> None:
    assert violated_fields(request_message) == set()
