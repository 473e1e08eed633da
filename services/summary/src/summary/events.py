"""What the summary service does when the patient-record service reports a change.

Handling is idempotent, since delivery is at least once: a purge deletes what is left
(nothing, the second time), and staleness is a flag set on the summaries written before
the change (set already, the second time). The fingerprint alone already keeps a changed
chart from reusing an old summary; the flag tells an operator which ones no longer match.
"""

from __future__ import annotations

import logging

from summary.domain import PatientEvent
from summary.use_cases import Summaries

logger = logging.getLogger(__name__)

PATIENT_DELETED = "patient.deleted"
PATIENT_UPDATED = "patient.updated"
NOTE_CREATED = "note.created"
NOTE_DELETED = "note.deleted"
# The patient fields a summary states; a change of any other leaves it true.
_SUMMARIZED_FIELDS = frozenset({"date_of_birth", "sex"})


async def handle_patient_event(summaries: Summaries, event: PatientEvent) -> None:
    if event.event_type == PATIENT_DELETED:
        await purge_patient(summaries, event)
    elif event.event_type in (NOTE_CREATED, NOTE_DELETED) or _changes_summarized_fields(event):
        await _mark_stale(summaries, event)


async def purge_patient(summaries: Summaries, event: PatientEvent) -> None:
    """The patient is gone: so are its summaries and jobs, and none will be stored again
    (a job or request still in flight finds the patient marked deleted)."""
    async with summaries.unit_of_work() as uow:
        await uow.deleted_patients.lock(event.patient_id)
        await uow.deleted_patients.mark_deleted(event.patient_id, at=event.occurred_at)
        jobs = await uow.jobs.delete_for_patient(event.patient_id)
        removed = await uow.summaries.delete_for_patient(event.patient_id)
        await uow.commit()
    logger.info(
        "purged a deleted patient's summaries",
        extra={"patient_id": event.patient_id, "summaries": removed, "jobs": jobs},
    )


async def _mark_stale(summaries: Summaries, event: PatientEvent) -> None:
    async with summaries.unit_of_work() as uow:
        await uow.summaries.mark_stale(event.patient_id, changed_at=event.occurred_at)
        await uow.commit()


def _changes_summarized_fields(event: PatientEvent) -> bool:
    if event.event_type != PATIENT_UPDATED:
        return False
    changed = event.payload.get("changed_fields")
    return isinstance(changed, list) and bool(_SUMMARIZED_FIELDS.intersection(changed))
