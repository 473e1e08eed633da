"""The patient-record service's configuration (MEDSTATION_* environment variables)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from medstation_platform.secret import Secret
from medstation_platform.settings import DatabaseUrl, Port, ServiceSettings


class PatientSettings(ServiceSettings, frozen=True, kw_only=True):
    grpc_port: Port = 50052
    database_url: DatabaseUrl = (
        "postgresql+psycopg://medstation_patient@127.0.0.1:5432/medstation_patient"
    )
    events_stream: Annotated[str, msgspec.Meta(min_length=1)] = "medstation.patient.events"
    # Patients whose records each process keeps, checked against the row on every read
    # (shared_statements.PatientReads); 0 keeps none.
    patient_cache_entries: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 512
    # The PostgreSQL advisory lock that lets one replica at a time relay the outbox.
    outbox_relay_lock_id: int = 52_052
    # Keys the hash of idempotent requests, so the stored hash reveals nothing of the PHI
    # a request carried (names and birth dates are easy to guess and check against a hash).
    idempotency_secret: Secret = Secret("local-development-idempotency-secret")
