"""Every REST route of the API contract (shared/API.md) is annotated on the right RPC."""

from __future__ import annotations

import re
from typing import Any

from google.protobuf import descriptor, json_format

from medstation.chat.v1 import chat_service_pb2
from medstation.patient.v1 import patient_service_pb2
from medstation.summary.v1 import summary_service_pb2
from medstation.user.v1 import user_service_pb2

SERVICES = (
    user_service_pb2.DESCRIPTOR.services_by_name["UserService"],
    patient_service_pb2.DESCRIPTOR.services_by_name["PatientRecordService"],
    summary_service_pb2.DESCRIPTOR.services_by_name["SummaryService"],
    chat_service_pb2.DESCRIPTOR.services_by_name["ChatService"],
)

# (RPC, verb, path as API.md writes it, body); a "" body means none.
CONTRACT = {
    ("medstation.user.v1.UserService.Register", "post", "/v1/auth/register", "*"),
    ("medstation.user.v1.UserService.Login", "post", "/v1/auth/login", "*"),
    ("medstation.user.v1.UserService.Refresh", "post", "/v1/auth/refresh", "*"),
    ("medstation.user.v1.UserService.Logout", "post", "/v1/auth/logout", "*"),
    ("medstation.user.v1.UserService.GetMe", "get", "/v1/users/me", ""),
    ("medstation.user.v1.UserService.UpdateMe", "patch", "/v1/users/me", "user"),
    ("medstation.user.v1.UserService.ListUsers", "get", "/v1/users", ""),
    ("medstation.user.v1.UserService.GetUser", "get", "/v1/users/{id}", ""),
    ("medstation.user.v1.UserService.SetRole", "post", "/v1/users/{id}:setRole", "*"),
    ("medstation.user.v1.UserService.Deactivate", "post", "/v1/users/{id}:deactivate", "*"),
    ("medstation.user.v1.UserService.GetJwks", "get", "/.well-known/jwks.json", ""),
    ("medstation.patient.v1.PatientRecordService.CreatePatient", "post", "/v1/patients", "*"),
    ("medstation.patient.v1.PatientRecordService.ListPatients", "get", "/v1/patients", ""),
    ("medstation.patient.v1.PatientRecordService.GetPatient", "get", "/v1/patients/{id}", ""),
    (
        "medstation.patient.v1.PatientRecordService.UpdatePatient",
        "patch",
        "/v1/patients/{id}",
        "patient",
    ),
    (
        "medstation.patient.v1.PatientRecordService.DeletePatient",
        "delete",
        "/v1/patients/{id}",
        "",
    ),
    (
        "medstation.patient.v1.PatientRecordService.AddCareTeamMember",
        "post",
        "/v1/patients/{id}/care-team",
        "*",
    ),
    (
        "medstation.patient.v1.PatientRecordService.RemoveCareTeamMember",
        "delete",
        "/v1/patients/{id}/care-team/{user_id}",
        "",
    ),
    (
        "medstation.patient.v1.PatientRecordService.CreateNote",
        "post",
        "/v1/patients/{patient_id}/notes",
        "*",
    ),
    (
        "medstation.patient.v1.PatientRecordService.ListNotes",
        "get",
        "/v1/patients/{patient_id}/notes",
        "",
    ),
    (
        "medstation.patient.v1.PatientRecordService.GetNote",
        "get",
        "/v1/patients/{patient_id}/notes/{id}",
        "",
    ),
    (
        "medstation.patient.v1.PatientRecordService.DeleteNote",
        "delete",
        "/v1/patients/{patient_id}/notes/{id}",
        "",
    ),
    (
        "medstation.patient.v1.PatientRecordService.DeleteAllNotes",
        "delete",
        "/v1/patients/{patient_id}/notes",
        "",
    ),
    (
        "medstation.patient.v1.PatientRecordService.ListAuditEvents",
        "get",
        "/v1/audit-events",
        "",
    ),
    (
        "medstation.summary.v1.SummaryService.GetSummary",
        "get",
        "/v1/patients/{patient_id}/summary",
        "",
    ),
    (
        "medstation.summary.v1.SummaryService.CreateSummaryJob",
        "post",
        "/v1/patients/{patient_id}/summary-jobs",
        "*",
    ),
    ("medstation.summary.v1.SummaryService.GetSummaryJob", "get", "/v1/summary-jobs/{id}", ""),
    (
        "medstation.summary.v1.SummaryService.WatchSummaryJob",
        "get",
        "/v1/summary-jobs/{id}:watch",
        "",
    ),
    (
        "medstation.summary.v1.SummaryService.ListSummaries",
        "get",
        "/v1/patients/{patient_id}/summaries",
        "",
    ),
    ("medstation.chat.v1.ChatService.ListModels", "get", "/v1/models", ""),
    ("medstation.chat.v1.ChatService.CreateModel", "post", "/v1/models", "*"),
    ("medstation.chat.v1.ChatService.UpdateModel", "patch", "/v1/models/{id}", "model"),
    ("medstation.chat.v1.ChatService.CreateChat", "post", "/v1/chats", "*"),
    ("medstation.chat.v1.ChatService.ListChats", "get", "/v1/chats", ""),
    ("medstation.chat.v1.ChatService.GetChat", "get", "/v1/chats/{id}", ""),
    ("medstation.chat.v1.ChatService.UpdateChat", "patch", "/v1/chats/{id}", "chat"),
    ("medstation.chat.v1.ChatService.DeleteChat", "delete", "/v1/chats/{id}", ""),
    ("medstation.chat.v1.ChatService.SendMessage", "post", "/v1/chats/{chat_id}/messages", "*"),
    (
        "medstation.chat.v1.ChatService.StreamMessage",
        "post",
        "/v1/chats/{chat_id}/messages:stream",
        "*",
    ),
    ("medstation.chat.v1.ChatService.ListMessages", "get", "/v1/chats/{chat_id}/messages", ""),
    ("medstation.chat.v1.ChatService.SearchMessages", "get", "/v1/messages:search", ""),
}
VERBS = ("get", "put", "post", "delete", "patch")
SERVER_STREAMING = {
    "medstation.summary.v1.SummaryService.WatchSummaryJob",
    "medstation.chat.v1.ChatService.StreamMessage",
}


def http_rule(method: descriptor.MethodDescriptor) -> dict[str, Any]:
    """Read the google.api.http option through JSON, which needs no untyped google.api import."""
    options = json_format.MessageToDict(method.GetOptions(), preserving_proto_field_name=True)
    rule: dict[str, Any] = options.get("[google.api.http]", {})
    return rule


def as_written_in_contract(path: str) -> str:
    """Turn `{patient.id}`, where PATCH takes the id from the body's resource, into `{id}`."""
    return re.sub(r"\{[a-z_]+\.([a-z_]+)\}", r"{\1}", path)


def annotated_routes() -> set[tuple[str, str, str, str]]:
    routes = set()
    for service in SERVICES:
        for method in service.methods:
            rule = http_rule(method)
            assert "additional_bindings" not in rule, method.full_name
            for verb in VERBS:
                if verb in rule:
                    path = as_written_in_contract(rule[verb])
                    routes.add((method.full_name, verb, path, rule.get("body", "")))
    return routes


def test_every_contract_route_is_annotated_and_nothing_else() -> None:
    routes = annotated_routes()

    assert CONTRACT - routes == set(), "routes of API.md missing from the protos"
    assert routes - CONTRACT == set(), "routes in the protos that API.md does not list"


def test_every_rpc_has_exactly_one_route() -> None:
    rpcs = [method.full_name for service in SERVICES for method in service.methods]
    routed = [name for name, _verb, _path, _body in annotated_routes()]

    assert sorted(rpcs) == sorted(routed)


def test_only_the_watch_and_stream_rpcs_stream_from_the_server() -> None:
    streaming = {
        method.full_name
        for service in SERVICES
        for method in service.methods
        if method.server_streaming or method.client_streaming
    }

    assert streaming == SERVER_STREAMING
    assert all(not method.client_streaming for service in SERVICES for method in service.methods)
