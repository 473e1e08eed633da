"""Limits that keep one caller from taking more than their share (OWASP API4): page sizes,
request sizes at the gateway and at each service, and the per-user message rate.

The gateway's own token buckets (gateway-wide and per client address, 429 with
`retry-after`) are tested against a dedicated small-bucket Envoy in
libs/devstack/tests/test_envoy.py: this shared stack must keep a bucket large enough for
every other test.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.message import Message
from rest_answers import error_info, ok, violations
from stack_harness import REPO_ROOT, Account, Accounts, Stack

from devstack import gateway_config
from medstation.chat.v1 import chat_service_pb2 as chat
from medstation.patient.v1 import patient_service_pb2 as patient
from medstation.summary.v1 import summary_service_pb2 as summary
from medstation.user.v1 import user_service_pb2 as user

MAX_PAGE_SIZE = 100
GATEWAY_MAX_BODY = 1_048_576
GRPC_MAX_MESSAGE = 4 * 1_048_576
MESSAGES_PER_MINUTE = 30
SOME_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as api:
        yield api


@pytest.fixture(scope="module")
def busy_doctor(client: httpx.Client, stack: Stack) -> Account:
    """A clinician with more patients than fit on the largest page."""
    doctor = Accounts(client, stack).clinician()

    def create(index: int) -> None:
        body = {"name": f"Paged {index:03d}", "date_of_birth": "1980-01-01", "sex": "other"}
        ok(client.post("/v1/patients", json=body, headers=doctor.headers))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, range(MAX_PAGE_SIZE + 1)))
    return doctor


def test_a_page_size_above_100_is_coerced_to_100(
    client: httpx.Client, stack: Stack, busy_doctor: Account
) -> None:
    admin = Accounts(client, stack).admin()

    patients = ok(
        client.get("/v1/patients", params={"page_size": 100_000}, headers=busy_doctor.headers)
    )
    events = ok(
        client.get(
            "/v1/audit-events",
            params={"actor_id": busy_doctor.id, "page_size": 100_000},
            headers=admin.headers,
        )
    )

    assert len(patients["patients"]) == MAX_PAGE_SIZE
    assert patients["next_page_token"]
    assert len(events["audit_events"]) == MAX_PAGE_SIZE
    assert events["next_page_token"]


# Every list: its REST path (ids of things that need not exist: the page size is
# checked before anything is looked up).
LIST_PATHS = {
    "medstation.user.v1.UserService/ListUsers": "/v1/users",
    "medstation.patient.v1.PatientRecordService/ListPatients": "/v1/patients",
    "medstation.patient.v1.PatientRecordService/ListNotes": f"/v1/patients/{SOME_ID}/notes",
    "medstation.patient.v1.PatientRecordService/ListAuditEvents": "/v1/audit-events",
    "medstation.summary.v1.SummaryService/ListSummaries": f"/v1/patients/{SOME_ID}/summaries",
    "medstation.chat.v1.ChatService/ListModels": "/v1/models",
    "medstation.chat.v1.ChatService/ListChats": "/v1/chats",
    "medstation.chat.v1.ChatService/ListMessages": f"/v1/chats/{SOME_ID}/messages",
    "medstation.chat.v1.ChatService/SearchMessages": "/v1/messages:search?query=x",
}


def _paged_methods() -> set[str]:
    """Every RPC whose request has a page_size."""
    files = descriptor_pb2.FileDescriptorSet()
    files.ParseFromString((REPO_ROOT / gateway_config.DESCRIPTOR_RELATIVE_PATH).read_bytes())
    paged = {
        f".{file.package}.{message.name}"
        for file in files.file
        for message in file.message_type
        if any(field.name == "page_size" for field in message.field)
    }
    return {
        f"{file.package}.{service.name}/{method.name}"
        for file in files.file
        if file.package.startswith("medstation.")
        for service in file.service
        for method in service.method
        if method.input_type in paged
    }


def test_every_paged_rpc_is_covered() -> None:
    assert set(LIST_PATHS) == _paged_methods()


@pytest.mark.parametrize("path", LIST_PATHS.values(), ids=list(LIST_PATHS))
def test_a_negative_page_size_is_400_naming_it(
    client: httpx.Client, stack: Stack, path: str
) -> None:
    admin = Accounts(client, stack).admin()  # allowed to call every list
    separator = "&" if "?" in path else "?"

    response = client.get(f"{path}{separator}page_size=-1", headers=admin.headers)

    assert response.status_code == 400, response.text
    assert violations(response) == {"page_size"}


def test_a_body_over_the_gateways_limit_is_413(client: httpx.Client, stack: Stack) -> None:
    doctor = Accounts(client, stack).clinician()
    padding = "x" * GATEWAY_MAX_BODY

    public = client.post("/v1/auth/login", json={"email": "a@e2e.test", "password": padding})
    private = client.post(
        f"/v1/patients/{SOME_ID}/notes", json={"content": padding}, headers=doctor.headers
    )

    for response in (public, private):
        assert response.status_code == 413
        assert response.json()["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]


def test_a_grpc_message_over_the_gateways_limit_is_resource_exhausted(stack: Stack) -> None:
    request = user.LoginRequest(email="a@e2e.test", password="x" * GATEWAY_MAX_BODY)
    with grpc.insecure_channel(stack.gateway_url.removeprefix("http://")) as channel:
        login = channel.unary_unary(
            "/medstation.user.v1.UserService/Login",
            request_serializer=user.LoginRequest.SerializeToString,
            response_deserializer=user.LoginResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as raised:
            login(request, timeout=10)

    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def _oversized(size: int) -> dict[str, tuple[str, Message]]:
    """One call per service whose request is `size` characters of text."""
    text = "x" * size
    return {
        "user": ("/medstation.user.v1.UserService/Login", user.LoginRequest(password=text)),
        "patient-record": (
            "/medstation.patient.v1.PatientRecordService/CreateNote",
            patient.CreateNoteRequest(patient_id=SOME_ID, content=text),
        ),
        "summary": (
            "/medstation.summary.v1.SummaryService/CreateSummaryJob",
            summary.CreateSummaryJobRequest(patient_id=SOME_ID, request_id=text),
        ),
        "chat": (
            "/medstation.chat.v1.ChatService/SendMessage",
            chat.SendMessageRequest(chat_id=SOME_ID, content=text),
        ),
    }


def _code_at(address: str, method: str, request: Message) -> grpc.StatusCode:
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(
            method, request_serializer=type(request).SerializeToString, response_deserializer=None
        )
        try:
            call(request, timeout=30)
        except grpc.RpcError as error:
            code: grpc.StatusCode = error.code()
            return code
    return grpc.StatusCode.OK


def test_each_service_refuses_grpc_messages_over_4_mib(stack: Stack) -> None:
    over = {
        key: _code_at(stack.services[key].address, method, request).name
        for key, (method, request) in _oversized(GRPC_MAX_MESSAGE + 1024).items()
    }
    # The control: 3 MiB gets past the size check, to authentication.
    under = {
        key: _code_at(stack.services[key].address, method, request).name
        for key, (method, request) in _oversized(3 * 1_048_576).items()
    }

    assert over == dict.fromkeys(over, "RESOURCE_EXHAUSTED")
    assert under == {
        "user": "INVALID_ARGUMENT",  # Login is public: its validation (no email) answers
        "patient-record": "UNAUTHENTICATED",
        "summary": "UNAUTHENTICATED",
        "chat": "UNAUTHENTICATED",
    }


@pytest.fixture(scope="module")
def flooded(client: httpx.Client, stack: Stack) -> httpx.Response:
    """The first refused message of a clinician sending more than 30 a minute.

    The limit counts per clock minute: when the sends straddle a minute's end, the count
    starts again, so the refusal may come up to one allowance later — never later still.
    """
    doctor = Accounts(client, stack).clinician()
    models = ok(client.get("/v1/models", headers=doctor.headers))["models"]
    model = next(m["id"] for m in models if m["name"] == "medstation-offline")
    chat_id = ok(client.post("/v1/chats", json={"model_id": model}, headers=doctor.headers))["id"]
    path = f"/v1/chats/{chat_id}/messages"
    for index in range(2 * MESSAGES_PER_MINUTE + 1):
        sent = client.post(path, json={"content": f"question {index}"}, headers=doctor.headers)
        if sent.status_code != 200:
            assert index >= MESSAGES_PER_MINUTE, f"refused after only {index} messages"
            return sent
    raise AssertionError(f"{2 * MESSAGES_PER_MINUTE + 1} messages in under two minutes allowed")


def test_a_user_sending_too_many_messages_gets_429(flooded: httpx.Response) -> None:
    assert flooded.status_code == 429, flooded.text
    info = error_info(flooded)
    assert info["reason"] == "RATE_LIMITED"
    assert 1 <= int(info["metadata"]["retry_after_seconds"]) <= 60


def test_a_429_from_a_service_says_when_to_retry(flooded: httpx.Response) -> None:
    assert flooded.status_code == 429
    retry_after = int(flooded.headers["retry-after"])
    assert retry_after == int(error_info(flooded)["metadata"]["retry_after_seconds"])


def test_the_message_limit_is_per_user(
    client: httpx.Client, stack: Stack, flooded: httpx.Response
) -> None:
    """Another user is unaffected by the one who used up their allowance."""
    assert flooded.status_code == 429
    doctor = Accounts(client, stack).clinician()
    models = ok(client.get("/v1/models", headers=doctor.headers))["models"]
    model = next(m["id"] for m in models if m["name"] == "medstation-offline")
    chat_id = ok(client.post("/v1/chats", json={"model_id": model}, headers=doctor.headers))["id"]

    sent = client.post(
        f"/v1/chats/{chat_id}/messages", json={"content": "hello"}, headers=doctor.headers
    )

    assert sent.status_code == 200, sent.text
