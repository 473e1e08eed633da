"""Calling the patient-record service the way a client does: over gRPC with a bearer token,
reading rich error details. Tokens are minted with a test key the service is told to trust."""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devstack.rpc_failures import failure
from medstation.patient.v1 import patient_service_pb2 as pb
from medstation_platform.auth.keys import CachedJwks
from medstation_platform.auth.tokens import TokenVerifier

if TYPE_CHECKING:
    from medstation.patient.v1.patient_service_pb2_grpc import PatientRecordServiceAsyncStub

ISSUER = "medstation"
AUDIENCE = "medstation-api"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
Metadata = tuple[tuple[str, str], ...]


async def not_found(call: Awaitable[object]) -> None:
    """The call fails exactly as it would for a patient that does not exist."""
    failed = await failure(call)
    assert (failed.code, failed.reason) == (grpc.StatusCode.NOT_FOUND, "PATIENT_NOT_FOUND")


@dataclass(frozen=True)
class Caller:
    user_id: str
    role: str
    access_token: str

    @property
    def metadata(self) -> Metadata:
        return (("authorization", f"Bearer {self.access_token}"),)


class TokenIssuer:
    """Signs access tokens the way the user service does, with a key of its own."""

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        self._kid = secrets.token_hex(8)

    def jwks(self) -> bytes:
        raw = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        x = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": self._kid, "alg": "EdDSA"}
        return json.dumps({"keys": [jwk]}).encode()

    def verifier(self) -> TokenVerifier:
        """Checks tokens as in production, with this issuer's JWKS served by a fake fetch."""

        async def fetch_jwks() -> bytes:
            return self.jwks()

        return TokenVerifier(CachedJwks(fetch_jwks), issuer=ISSUER, audience=AUDIENCE)

    def caller(self, role: str = "clinician") -> Caller:
        user_id = str(uuid.uuid4())
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user_id,
            "role": role,
            "sid": str(uuid.uuid4()),
            "jti": str(uuid.uuid4()),
            "iat": now,
            "nbf": now,
            "exp": now + 900,
        }
        token = jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self._kid})
        return Caller(user_id, role, token)


class PatientClient:
    """Shortcuts over the stub; tests call the stub for what they check."""

    def __init__(self, stub: PatientRecordServiceAsyncStub, issuer: TokenIssuer) -> None:
        self.stub = stub
        self._issuer = issuer

    def clinician(self) -> Caller:
        return self._issuer.caller("clinician")

    def admin(self) -> Caller:
        return self._issuer.caller("admin")

    async def create_patient(
        self,
        caller: Caller,
        name: str | None = None,
        *,
        date_of_birth: str = "1980-02-29",
        sex: str = "unknown",
        mrn: str = "",
        request_id: str = "",
    ) -> pb.Patient:
        request = pb.CreatePatientRequest(
            name=name or f"Test Patient {secrets.token_hex(3)}",
            date_of_birth=date_of_birth,
            sex=sex,
            mrn=mrn,
            request_id=request_id,
        )
        return await self.stub.CreatePatient(request, metadata=caller.metadata)

    async def create_note(
        self, caller: Caller, patient_id: str, content: str = "S: cough for three days"
    ) -> pb.Note:
        request = pb.CreateNoteRequest(patient_id=patient_id, content=content)
        return await self.stub.CreateNote(request, metadata=caller.metadata)

    async def add_member(self, caller: Caller, patient_id: str, user_id: str) -> pb.Patient:
        request = pb.AddCareTeamMemberRequest(id=patient_id, user_id=user_id)
        return await self.stub.AddCareTeamMember(request, metadata=caller.metadata)

    async def remove_member(self, caller: Caller, patient_id: str, user_id: str) -> pb.Patient:
        request = pb.RemoveCareTeamMemberRequest(id=patient_id, user_id=user_id)
        return await self.stub.RemoveCareTeamMember(request, metadata=caller.metadata)

    async def audit_trail(self, admin: Caller, *, patient_id: str) -> list[pb.AuditEvent]:
        """Every audit event about the patient, newest first."""
        events: list[pb.AuditEvent] = []
        request = pb.ListAuditEventsRequest(patient_id=patient_id, page_size=100)
        while True:
            page = await self.stub.ListAuditEvents(request, metadata=admin.metadata)
            events += page.audit_events
            if not page.next_page_token:
                return events
            request.page_token = page.next_page_token
