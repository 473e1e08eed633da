"""What the summary service does when the patient-record service reports a change.

Handling is idempotent, since delivery is at least once: a purge deletes what is left
(nothing, the second time), and staleness is a flag set on the summaries written before
the change (set already, the second time). The fingerprint alone already keeps a changed
chart from reusing an old summary; the flag tells an operator which ones no longer match.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime

from summary.domain import PatientEvent
from summary.use_cases import Summaries

logger = logging.getLogger(__name__)

PATIENT_DELETED = "patient.deleted"
PATIENT_UPDATED = "patient.updated"
NOTE_CREATED = "note.created"
NOTE_DELETED = "note.deleted"
# The patient fields a summary states; a change of any other leaves it true.
_SUMMARIZED_FIELDS = frozenset({"date_of_birth", "sex"})


async def handle_patient_events(summaries: Summaries, events: Sequence[PatientEvent]) -> None:
    """A batch of events, in stream order: every staleness mark in one statement, then each
    purge in its own transaction. Returns once all of it is committed (only then may the
    batch be acknowledged); a failure leaves it to be delivered again, whole.

    The marks may go first whatever the stream's order: a purge deletes every summary of
    its patient and keeps new ones from being stored, so a mark of that patient before the
    purge is moot and one after it finds nothing. A purged patient's marks are dropped.
    """
    purges = _first_deletions(events)
    last_changes = _last_changes(events, purged=purges.keys())
    if last_changes:
        async with summaries.unit_of_work().autocommit() as uow:  # one statement
            await uow.summaries.mark_stale(last_changes)
            await uow.commit()
    for deletion in purges.values():
        await purge_patient(summaries, deletion)


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


def _first_deletions(events: Sequence[PatientEvent]) -> dict[str, PatientEvent]:
    """Each deleted patient's first deletion event; a repeat would change nothing."""
    deletions: dict[str, PatientEvent] = {}
    for event in events:
        if event.event_type == PATIENT_DELETED:
            deletions.setdefault(event.patient_id, event)
    return deletions


def _last_changes(
    events: Sequence[PatientEvent], *, purged: Collection[str]
) -> dict[str, datetime]:
    """When each patient's summarized record last changed: a summary written before any of
    the batch's changes was written before the last one, so that one time marks them all."""
    last: dict[str, datetime] = {}
    for event in events:
        if event.patient_id not in purged and _changes_summary(event):
            previous = last.get(event.patient_id, event.occurred_at)
            last[event.patient_id] = max(previous, event.occurred_at)
    return last


def _changes_summary(event: PatientEvent) -> bool:
    return event.event_type in (NOTE_CREATED, NOTE_DELETED) or _changes_summarized_fields(event)


def _changes_summarized_fields(event: PatientEvent) -> bool:
    if event.event_type != PATIENT_UPDATED:
        return False
    changed = event.payload.get("changed_fields")
    return isinstance(changed, list) and bool(_SUMMARIZED_FIELDS.intersection(changed))
