"""Sample requests for the use cases: valid unless a test says otherwise."""

from __future__ import annotations

import secrets

from medstation_platform.auth.principal import Principal
from patient_record import use_cases
from patient_record.domain import Note, Patient
from patient_record.use_cases import NoteDetails, PatientDetails, Records


def details(
    name: str = "Ada Lovelace",
    date_of_birth: str = "1815-12-10",
    sex: str = "female",
    mrn: str | None = None,
) -> PatientDetails:
    return PatientDetails(
        name=name,
        date_of_birth=date_of_birth,
        sex=sex,
        mrn=f"MRN-{secrets.token_hex(4)}" if mrn is None else mrn,
    )


async def patient(
    records: Records, principal: Principal, sample: PatientDetails | None = None
) -> Patient:
    return await use_cases.create_patient(records, principal, sample or details(), request_id="")


async def note(
    records: Records, principal: Principal, patient_id: str, content: str = "S: cough"
) -> Note:
    return await use_cases.create_note(
        records, principal, patient_id, NoteDetails(content, None), request_id=""
    )
