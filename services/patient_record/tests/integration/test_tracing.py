"""Audit events carry the W3C trace id of the request that caused them."""

from __future__ import annotations

import secrets

import grpc
from opentelemetry.sdk.trace import TracerProvider

from medstation.patient.v1 import patient_service_pb2 as pb
from medstation.patient.v1 import patient_service_pb2_grpc as pb_grpc
from medstation_platform.rpc.runtime import build_pipeline
from medstation_platform.rpc.server import start_server
from patient_record import bootstrap
from patient_record.grpc_api import PUBLIC_METHODS
from services.patient_record.tests.integration.patient_client import PatientClient, TokenIssuer


async def test_audit_events_record_the_callers_trace_id(
    service: bootstrap.PatientService, issuer: TokenIssuer
) -> None:
    # The pipeline opens each call's server span, here on a provider of the test's own.
    pipeline = build_pipeline(
        domain=bootstrap.DOMAIN,
        verifier=service.verifier,
        public_methods=PUBLIC_METHODS,
        tracer_provider=TracerProvider(),
    )
    running = await start_server(
        host="127.0.0.1", port=0, bindings=[service.binding], interceptors=[pipeline]
    )
    trace_id = secrets.token_hex(16)
    traceparent = (("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01"),)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            client = PatientClient(pb_grpc.PatientRecordServiceStub(channel), issuer)
            doctor, admin = client.clinician(), client.admin()
            patient = await client.create_patient(doctor)
            await client.stub.GetPatient(
                pb.GetPatientRequest(id=patient.id), metadata=doctor.metadata + traceparent
            )
            trail = await client.audit_trail(admin, patient_id=patient.id)
            # A page of several patients: its rows are written by one statement.
            other = await client.create_patient(doctor)
            listed = await client.stub.ListPatients(
                pb.ListPatientsRequest(), metadata=doctor.metadata + traceparent
            )
            listings = [
                event
                for listed_id in (patient.id, other.id)
                for event in await client.audit_trail(admin, patient_id=listed_id)
                if event.action == "patient.list"
            ]
    finally:
        await running.stop(grace_seconds=0)

    assert {p.id for p in listed.patients} == {patient.id, other.id}
    assert [e.trace_id for e in listings] == [trace_id, trace_id]
    read, created = trail
    assert (read.action, read.trace_id) == ("patient.read", trace_id)
    assert created.action == "patient.create"
    # A call without a traceparent starts a trace of its own.
    assert created.trace_id != trace_id
    assert len(created.trace_id) == 32
