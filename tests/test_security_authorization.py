"""Who may call what: every RPC of every service, as the owner of what it acts on, another
clinician, an admin and an anonymous caller, with the outcome each must get.

The table below is the authorization policy (OWASP API1/API5: object- and function-level
authorization). Every RPC in the gateway's descriptor set must have a row, so a new RPC
cannot ship without someone deciding who may call it. Calls are native gRPC through the
gateway, where REST calls end up too; a final test calls every service port directly.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pb2, field_mask_pb2
from google.protobuf.message import Message
from rest_answers import ok
from stack_harness import REPO_ROOT, Account, Accounts, Stack

from devstack import gateway_config
from medstation.chat.v1 import chat_service_pb2 as chat
from medstation.patient.v1 import patient_service_pb2 as patient
from medstation.summary.v1 import summary_service_pb2 as summary
from medstation.user.v1 import user_service_pb2 as user

OK = grpc.StatusCode.OK
NOT_FOUND = grpc.StatusCode.NOT_FOUND
DENIED = grpc.StatusCode.PERMISSION_DENIED
ANONYMOUS = grpc.StatusCode.UNAUTHENTICATED
PASSWORD = "a-long-enough-password"
OFFLINE_MODEL = "medstation-offline"
ACTORS = ("owner", "other", "admin", "anonymous")
PUBLIC = (OK, OK, OK, OK)
USERS = "medstation.user.v1.UserService"
PATIENTS = "medstation.patient.v1.PatientRecordService"
SUMMARIES = "medstation.summary.v1.SummaryService"
CHATS = "medstation.chat.v1.ChatService"


@dataclass(frozen=True)
class People:
    api: httpx.Client
    accounts: Accounts
    owner: Account  # creates every resource of a World
    other: Account  # another clinician, on no care team of the owner's
    admin: Account

    def actor(self, name: str) -> Account | None:
        found: Account | None = getattr(self, name, None)
        return found

    def register(self) -> tuple[str, str]:
        """A fresh account nobody else uses: (email, id)."""
        email = f"bystander-{secrets.token_hex(6)}@e2e.test"
        body = {"email": email, "password": PASSWORD, "display_name": "Bystander"}
        return email, str(ok(self.api.post("/v1/auth/register", json=body))["id"])


class World:
    """What the calls act on, owned by `people.owner`, each made when first used."""

    def __init__(self, people: People) -> None:
        self.people = people
        self._api = people.api
        self._owner = people.owner.headers

    @cached_property
    def patient(self) -> str:
        body = {"name": "Mallory Matrix", "date_of_birth": "1970-05-05", "sex": "female"}
        return str(ok(self._api.post("/v1/patients", json=body, headers=self._owner))["id"])

    @cached_property
    def note(self) -> str:
        path = f"/v1/patients/{self.patient}/notes"
        body = {"content": "S: cough\nA: bronchitis\nP: rest"}
        return str(ok(self._api.post(path, json=body, headers=self._owner))["id"])

    @cached_property
    def charted_patient(self) -> str:
        """The patient, with a note to summarize."""
        return self.patient if self.note else ""

    @cached_property
    def job(self) -> str:
        path = f"/v1/patients/{self.charted_patient}/summary-jobs"
        return str(ok(self._api.post(path, json={}, headers=self._owner))["id"])

    @cached_property
    def offline_model(self) -> str:
        models = ok(self._api.get("/v1/models", headers=self._owner))["models"]
        return str(next(m["id"] for m in models if m["name"] == OFFLINE_MODEL))

    @cached_property
    def chat(self) -> str:
        body = {"title": "Private", "model_id": self.offline_model}
        return str(ok(self._api.post("/v1/chats", json=body, headers=self._owner))["id"])

    @cached_property
    def model(self) -> str:
        body = {"name": f"matrix-{secrets.token_hex(4)}", "provider": "ollama", "enabled": False}
        admin = self.people.admin.headers
        return str(ok(self._api.post("/v1/models", json=body, headers=admin))["id"])

    @cached_property
    def bystander(self) -> tuple[str, str]:
        return self.people.register()

    @cached_property
    def member(self) -> str:
        """A bystander on the patient's care team (to be removed)."""
        path = f"/v1/patients/{self.patient}/care-team"
        ok(self._api.post(path, json={"user_id": self.bystander[1]}, headers=self._owner))
        return self.bystander[1]

    def own_patient_of(self, actor: Account | None) -> str:
        """A patient `actor` created (for anonymous: the owner's)."""
        headers = (actor or self.people.owner).headers
        body = {"name": "Own Patient", "date_of_birth": "1980-01-01", "sex": "male"}
        return str(ok(self._api.post("/v1/patients", json=body, headers=headers))["id"])

    def fresh_refresh_token(self) -> str:
        email, _ = self.bystander
        body = {"email": email, "password": PASSWORD}
        return str(ok(self._api.post("/v1/auth/login", json=body))["refresh_token"])


Request = Callable[[World, Account | None], Message]
Outcomes = tuple[grpc.StatusCode, grpc.StatusCode, grpc.StatusCode, grpc.StatusCode]


@dataclass(frozen=True)
class Row:
    method: str  # "<package>.<Service>/<Method>"
    request: Request
    expect: Outcomes  # as owner, other clinician, admin, anonymous
    fresh: bool = False  # the call uses up what it acts on: a new World for each caller
    case: str = ""  # tells apart two rows of one method


def _mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


# fmt: off
ROWS: tuple[Row, ...] = (
    # Identity: sign-up and sign-in are public; accounts are private but to admins.
    Row(f"{USERS}/Register", lambda w, a: user.RegisterRequest(
        email=f"new-{secrets.token_hex(6)}@e2e.test", password=PASSWORD, display_name="N"),
        PUBLIC),
    Row(f"{USERS}/Login", lambda w, a: user.LoginRequest(
        email=w.bystander[0], password=PASSWORD), PUBLIC),
    Row(f"{USERS}/Refresh", lambda w, a: user.RefreshRequest(
        refresh_token=w.fresh_refresh_token()), PUBLIC),
    Row(f"{USERS}/Logout", lambda w, a: user.LogoutRequest(
        refresh_token=w.fresh_refresh_token()), PUBLIC),
    Row(f"{USERS}/GetJwks", lambda w, a: user.GetJwksRequest(), PUBLIC),
    Row(f"{USERS}/GetMe", lambda w, a: user.GetMeRequest(), (OK, OK, OK, ANONYMOUS)),
    Row(f"{USERS}/UpdateMe", lambda w, a: user.UpdateMeRequest(
        user=user.User(display_name="Renamed"), update_mask=_mask("display_name")),
        (OK, OK, OK, ANONYMOUS)),
    Row(f"{USERS}/ListUsers", lambda w, a: user.ListUsersRequest(),
        (DENIED, DENIED, OK, ANONYMOUS)),
    Row(f"{USERS}/GetUser", lambda w, a: user.GetUserRequest(id=w.people.owner.id),
        (OK, NOT_FOUND, OK, ANONYMOUS)),
    Row(f"{USERS}/SetRole", lambda w, a: user.SetRoleRequest(
        id=w.bystander[1], role="clinician"), (DENIED, DENIED, OK, ANONYMOUS)),
    Row(f"{USERS}/Deactivate", lambda w, a: user.DeactivateRequest(id=w.bystander[1]),
        (DENIED, DENIED, OK, ANONYMOUS), fresh=True),
    # Patient records: the care team and admins; anyone else is told they do not exist.
    Row(f"{PATIENTS}/CreatePatient", lambda w, a: patient.CreatePatientRequest(
        name="New Patient", date_of_birth="1990-01-01", sex="other"),
        (OK, OK, OK, ANONYMOUS)),
    Row(f"{PATIENTS}/ListPatients", lambda w, a: patient.ListPatientsRequest(),
        (OK, OK, OK, ANONYMOUS)),
    Row(f"{PATIENTS}/GetPatient", lambda w, a: patient.GetPatientRequest(id=w.patient),
        (OK, NOT_FOUND, OK, ANONYMOUS)),
    Row(f"{PATIENTS}/UpdatePatient", lambda w, a: patient.UpdatePatientRequest(
        patient=patient.Patient(id=w.patient, name="Mallory Renamed"),
        update_mask=_mask("name")), (OK, NOT_FOUND, OK, ANONYMOUS)),
    Row(f"{PATIENTS}/DeletePatient", lambda w, a: patient.DeletePatientRequest(id=w.patient),
        (OK, NOT_FOUND, OK, ANONYMOUS), fresh=True),
    Row(f"{PATIENTS}/AddCareTeamMember", lambda w, a: patient.AddCareTeamMemberRequest(
        id=w.patient, user_id=w.bystander[1]), (OK, NOT_FOUND, OK, ANONYMOUS), fresh=True),
    Row(f"{PATIENTS}/RemoveCareTeamMember", lambda w, a: patient.RemoveCareTeamMemberRequest(
        id=w.patient, user_id=w.member), (OK, NOT_FOUND, OK, ANONYMOUS), fresh=True),
    Row(f"{PATIENTS}/CreateNote", lambda w, a: patient.CreateNoteRequest(
        patient_id=w.patient, content="S: follow-up"), (OK, NOT_FOUND, OK, ANONYMOUS)),
    Row(f"{PATIENTS}/ListNotes", lambda w, a: patient.ListNotesRequest(patient_id=w.patient),
        (OK, NOT_FOUND, OK, ANONYMOUS)),
    Row(f"{PATIENTS}/GetNote", lambda w, a: patient.GetNoteRequest(
        patient_id=w.patient, id=w.note), (OK, NOT_FOUND, OK, ANONYMOUS)),
    # A note reached through a patient the caller may see but the note is not of.
    Row(f"{PATIENTS}/GetNote", lambda w, a: patient.GetNoteRequest(
        patient_id=w.own_patient_of(a), id=w.note), (NOT_FOUND, NOT_FOUND, NOT_FOUND, ANONYMOUS),
        case="through-another-patient"),
    Row(f"{PATIENTS}/DeleteNote", lambda w, a: patient.DeleteNoteRequest(
        patient_id=w.patient, id=w.note), (OK, NOT_FOUND, OK, ANONYMOUS), fresh=True),
    Row(f"{PATIENTS}/DeleteNote", lambda w, a: patient.DeleteNoteRequest(
        patient_id=w.own_patient_of(a), id=w.note),
        (NOT_FOUND, NOT_FOUND, NOT_FOUND, ANONYMOUS), fresh=True, case="through-another-patient"),
    Row(f"{PATIENTS}/DeleteAllNotes", lambda w, a: patient.DeleteAllNotesRequest(
        patient_id=w.patient), (OK, NOT_FOUND, OK, ANONYMOUS), fresh=True),
    Row(f"{PATIENTS}/ListAuditEvents", lambda w, a: patient.ListAuditEventsRequest(
        patient_id=w.patient), (DENIED, DENIED, OK, ANONYMOUS)),
    # Summaries follow the patient's visibility.
    Row(f"{SUMMARIES}/GetSummary", lambda w, a: summary.GetSummaryRequest(
        patient_id=w.charted_patient), (OK, NOT_FOUND, OK, ANONYMOUS)),
    Row(f"{SUMMARIES}/CreateSummaryJob", lambda w, a: summary.CreateSummaryJobRequest(
        patient_id=w.patient), (OK, NOT_FOUND, OK, ANONYMOUS)),
    Row(f"{SUMMARIES}/GetSummaryJob", lambda w, a: summary.GetSummaryJobRequest(id=w.job),
        (OK, NOT_FOUND, OK, ANONYMOUS)),
    Row(f"{SUMMARIES}/WatchSummaryJob", lambda w, a: summary.WatchSummaryJobRequest(id=w.job),
        (OK, NOT_FOUND, OK, ANONYMOUS)),
    Row(f"{SUMMARIES}/ListSummaries", lambda w, a: summary.ListSummariesRequest(
        patient_id=w.patient), (OK, NOT_FOUND, OK, ANONYMOUS)),
    # Chat: the catalogue is the admins'; a chat is its creator's alone, admins included.
    Row(f"{CHATS}/ListModels", lambda w, a: chat.ListModelsRequest(), (OK, OK, OK, ANONYMOUS)),
    Row(f"{CHATS}/CreateModel", lambda w, a: chat.CreateModelRequest(
        name=f"matrix-{secrets.token_hex(4)}", provider="ollama"),
        (DENIED, DENIED, OK, ANONYMOUS)),
    Row(f"{CHATS}/UpdateModel", lambda w, a: chat.UpdateModelRequest(
        model=chat.Model(id=w.model, price_per_million_tokens=1.5),
        update_mask=_mask("price_per_million_tokens")), (DENIED, DENIED, OK, ANONYMOUS)),
    Row(f"{CHATS}/CreateChat", lambda w, a: chat.CreateChatRequest(model_id=w.offline_model),
        (OK, OK, OK, ANONYMOUS)),
    Row(f"{CHATS}/CreateChat", lambda w, a: chat.CreateChatRequest(
        model_id=w.offline_model, patient_id=w.patient), (OK, NOT_FOUND, OK, ANONYMOUS),
        case="about-a-patient"),
    Row(f"{CHATS}/ListChats", lambda w, a: chat.ListChatsRequest(), (OK, OK, OK, ANONYMOUS)),
    Row(f"{CHATS}/GetChat", lambda w, a: chat.GetChatRequest(id=w.chat),
        (OK, NOT_FOUND, NOT_FOUND, ANONYMOUS)),
    Row(f"{CHATS}/UpdateChat", lambda w, a: chat.UpdateChatRequest(
        chat=chat.Chat(id=w.chat, title="Renamed"), update_mask=_mask("title")),
        (OK, NOT_FOUND, NOT_FOUND, ANONYMOUS)),
    Row(f"{CHATS}/DeleteChat", lambda w, a: chat.DeleteChatRequest(id=w.chat),
        (OK, NOT_FOUND, NOT_FOUND, ANONYMOUS), fresh=True),
    Row(f"{CHATS}/SendMessage", lambda w, a: chat.SendMessageRequest(
        chat_id=w.chat, content="Hello"), (OK, NOT_FOUND, NOT_FOUND, ANONYMOUS)),
    Row(f"{CHATS}/StreamMessage", lambda w, a: chat.StreamMessageRequest(
        chat_id=w.chat, content="Hello"), (OK, NOT_FOUND, NOT_FOUND, ANONYMOUS)),
    Row(f"{CHATS}/ListMessages", lambda w, a: chat.ListMessagesRequest(chat_id=w.chat),
        (OK, NOT_FOUND, NOT_FOUND, ANONYMOUS)),
    Row(f"{CHATS}/SearchMessages", lambda w, a: chat.SearchMessagesRequest(query="hello"),
        (OK, OK, OK, ANONYMOUS)),
)
# fmt: on


def _methods() -> dict[str, bool]:
    """Every RPC of the API ("<package>.<Service>/<Method>") and whether it streams."""
    descriptor_set = descriptor_pb2.FileDescriptorSet()
    descriptor_set.ParseFromString(
        (REPO_ROOT / gateway_config.DESCRIPTOR_RELATIVE_PATH).read_bytes()
    )
    return {
        f"{file.package}.{service.name}/{method.name}": method.server_streaming
        for file in descriptor_set.file
        if file.package.startswith("medstation.")
        for service in file.service
        for method in service.method
    }


METHODS = _methods()


def test_every_rpc_has_a_row_in_the_table() -> None:
    assert {row.method for row in ROWS} == set(METHODS)


@pytest.fixture(scope="module")
def people(stack: Stack) -> Iterator[People]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as api:
        accounts = Accounts(api, stack)
        yield People(api, accounts, accounts.clinician(), accounts.clinician(), accounts.admin())


@pytest.fixture(scope="module")
def shared_world(people: People) -> World:
    return World(people)


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(stack.gateway_url.removeprefix("http://")) as channel:
        yield channel


def _raw(data: bytes) -> bytes:
    return data


def call(
    channel: grpc.Channel, method: str, request: Message, actor: Account | None
) -> grpc.StatusCode:
    """The status the call ends with (a stream is read to its end: job watches end with
    the job, replies with the stored message)."""
    metadata = () if actor is None else (("authorization", f"Bearer {actor.access_token}"),)
    path, serialize = f"/{method}", type(request).SerializeToString
    try:
        if METHODS[method]:
            stream = channel.unary_stream(path, serialize, _raw)
            list(stream(request, metadata=metadata, timeout=30))
        else:
            channel.unary_unary(path, serialize, _raw)(request, metadata=metadata, timeout=30)
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    return OK


def _row_id(row: Row) -> str:
    name = row.method.rsplit("/", 1)[1]
    return f"{name}[{row.case}]" if row.case else name


@pytest.mark.parametrize("row", ROWS, ids=[_row_id(row) for row in ROWS])
def test_each_caller_gets_the_outcome_in_the_table(
    row: Row, people: People, shared_world: World, gateway: grpc.Channel
) -> None:
    got = {}
    for name in ACTORS:
        world = World(people) if row.fresh else shared_world
        actor = people.actor(name)
        got[name] = call(gateway, row.method, row.request(world, actor), actor).name

    assert got == {name: code.name for name, code in zip(ACTORS, row.expect, strict=True)}


def test_every_service_port_refuses_anonymous_callers_of_non_public_rpcs(stack: Stack) -> None:
    """Straight to the services, past the gateway: authentication is theirs too. (An empty
    request is valid for every method: authentication comes before validation.)"""
    public = {row.method for row in ROWS if row.expect[3] == OK}
    ports = {
        USERS: stack.services["user"].address,
        PATIENTS: stack.services["patient-record"].address,
        SUMMARIES: stack.services["summary"].address,
        CHATS: stack.services["chat"].address,
    }
    answered: dict[str, grpc.StatusCode] = {}
    for method, streams in METHODS.items():
        if method in public:
            continue
        path = f"/{method}"
        with grpc.insecure_channel(ports[method.split("/")[0]]) as channel:
            try:
                if streams:
                    next(iter(channel.unary_stream(path, _raw, _raw)(b"", timeout=10)))
                else:
                    channel.unary_unary(path, _raw, _raw)(b"", timeout=10)
                answered[method] = OK
            except grpc.RpcError as error:
                answered[method] = error.code()

    assert len(answered) == len(METHODS) - len(public) > 0
    assert {method: code for method, code in answered.items() if code != ANONYMOUS} == {}
