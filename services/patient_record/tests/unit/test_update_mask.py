"""UpdatePatient's field mask, translated by the servicer (AIP-134)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import pytest
from google.protobuf import field_mask_pb2

from medstation.patient.v1 import patient_service_pb2 as pb
from medstation_platform import errors
from medstation_platform.auth.principal import (
    Principal,
    reset_current_principal,
    set_current_principal,
)
from medstation_platform.rpc.interceptors import Context
from patient_record.grpc_api import PatientRecordServicer
from patient_record.use_cases import Records
from services.patient_record.tests.unit import samples

NO_CONTEXT = cast(Context, None)  # the servicer never touches it


@pytest.fixture
def servicer(records: Records, doctor: Principal) -> Iterator[PatientRecordServicer]:
    token = set_current_principal(doctor)  # what the auth interceptor does per call
    yield PatientRecordServicer(records)
    reset_current_principal(token)


async def _update(
    servicer: PatientRecordServicer, patient: pb.Patient, paths: list[str] | None
) -> pb.Patient:
    mask = None if paths is None else field_mask_pb2.FieldMask(paths=paths)
    request = pb.UpdatePatientRequest(patient=patient, update_mask=mask)
    return await servicer.UpdatePatient(request, NO_CONTEXT)


async def test_the_mask_limits_the_change_to_its_fields(
    servicer: PatientRecordServicer, records: Records, doctor: Principal
) -> None:
    created = await samples.patient(records, doctor)
    body = pb.Patient(id=created.id, name="Augusta Ada King", sex="other")

    updated = await _update(servicer, body, ["name"])

    assert (updated.name, updated.sex) == ("Augusta Ada King", "female")


async def test_without_a_mask_the_fields_present_change(
    servicer: PatientRecordServicer, records: Records, doctor: Principal
) -> None:
    created = await samples.patient(records, doctor)
    body = pb.Patient(id=created.id, sex="other", care_team=["ignored"])

    updated = await _update(servicer, body, None)

    assert (updated.name, updated.sex) == ("Ada Lovelace", "other")
    assert list(updated.care_team) == [doctor.user_id]


async def test_an_empty_mrn_clears_it(
    servicer: PatientRecordServicer, records: Records, doctor: Principal
) -> None:
    created = await samples.patient(records, doctor, samples.details(mrn="MRN-77"))

    updated = await _update(servicer, pb.Patient(id=created.id, mrn=""), None)

    assert not updated.HasField("mrn") or updated.mrn == ""


async def test_a_masked_field_missing_from_the_body_is_validated_as_empty(
    servicer: PatientRecordServicer, records: Records, doctor: Principal
) -> None:
    created = await samples.patient(records, doctor)

    with pytest.raises(errors.InvalidArgument) as raised:
        await _update(servicer, pb.Patient(id=created.id), ["name"])

    assert [v.field for v in raised.value.violations] == ["patient.name"]


@pytest.mark.parametrize("path", ["care_team", "id", "created_at"])
async def test_server_owned_fields_cannot_be_masked(
    path: str, servicer: PatientRecordServicer, records: Records, doctor: Principal
) -> None:
    created = await samples.patient(records, doctor)

    with pytest.raises(errors.InvalidArgument) as raised:
        await _update(servicer, pb.Patient(id=created.id), [path])

    assert [v.field for v in raised.value.violations] == ["update_mask"]
