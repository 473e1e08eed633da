"""The patient-record service's configuration (MEDSTATION_* environment variables)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from medstation_platform.settings import ServiceSettings


class PatientSettings(ServiceSettings):
    grpc_port: int = Field(default=50052, ge=0, le=65535)
    database_url: str = Field(
        default="postgresql+psycopg://medstation_patient@127.0.0.1:5432/medstation_patient",
        pattern=r"^postgresql\+psycopg://",
    )
    events_stream: str = Field(default="medstation.patient.events", min_length=1)
    # The PostgreSQL advisory lock that lets one replica at a time relay the outbox.
    outbox_relay_lock_id: int = 52_052
    # Keys the hash of idempotent requests, so the stored hash reveals nothing of the PHI
    # a request carried (names and birth dates are easy to guess and check against a hash).
    idempotency_secret: SecretStr = SecretStr("local-development-idempotency-secret")
