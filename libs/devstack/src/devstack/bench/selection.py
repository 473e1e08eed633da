"""What of the selected scenarios this stack can serve, and why the rest is skipped.

A scenario runs when its service and those it requires are up; summary jobs also need a
summary worker; the baselines (echo ceilings, FastAPI reference) only the bench's own
tools; whatever sends chat messages needs the chat service's per-user send limit raised
(bench.chat_data), or it is skipped with a sentence saying how.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from devstack.bench.chat_data import limit_too_low, send_limit
from devstack.bench.plan import Endpoints, RunPlan
from devstack.bench.scenarios import (
    CHAT_SERVICE,
    PATIENT_SERVICE,
    STREAM_MESSAGE,
    SUMMARY_JOBS,
    SUMMARY_SERVICE,
    Scenario,
    select,
    selected_baselines,
    selected_measurements,
)
from devstack.stack_probe import service_status

REUSE_SCENARIO = "get_summary_reuse"
# What each measurement needs besides the bench's own client.
_MEASUREMENT_NEEDS = {
    STREAM_MESSAGE: (CHAT_SERVICE,),
    SUMMARY_JOBS: (SUMMARY_SERVICE, PATIENT_SERVICE),
}
_SENDS_MESSAGES = frozenset({"send_message", STREAM_MESSAGE})


@dataclass
class Selection:
    scenarios: list[Scenario]  # load scenarios to run, in order
    measurements: list[str]  # STREAM_MESSAGE, SUMMARY_JOBS, as selected and possible
    up: frozenset[str]  # the optional services serving
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    baselines: list[str] = field(default_factory=list)  # CEILINGS, REFERENCE, as selected

    @property
    def sends_messages(self) -> bool:
        return bool(_SENDS_MESSAGES & self._keys())

    @property
    def needs_patients(self) -> bool:
        if PATIENT_SERVICE not in self.up:
            return False
        return any(
            PATIENT_SERVICE in (s.service, *s.requires, *s.upstreams) for s in self.scenarios
        ) or bool({STREAM_MESSAGE, SUMMARY_JOBS} & set(self.measurements))

    @property
    def writes_scratch_notes(self) -> bool:
        return any(s.writes_scratch_notes for s in self.scenarios)

    @property
    def warms_summaries(self) -> bool:
        return REUSE_SCENARIO in self._keys()

    def _keys(self) -> set[str]:
        return {*self.measurements, *(s.key for s in self.scenarios)}


async def runnable(plan: RunPlan, endpoints: Endpoints, up: frozenset[str]) -> Selection:
    selection = Selection([], [], up, baselines=selected_baselines(plan.scenarios))
    for scenario in select(plan.scenarios):
        needed = (scenario.service, *scenario.requires)
        if missing := [s for s in needed if s not in up | {"user"}]:
            selection.skipped.append(f"{scenario.title}: {_not_in_stack(missing)}")
        else:
            selection.scenarios.append(scenario)
    for key in selected_measurements(plan.scenarios):
        if missing := [s for s in _MEASUREMENT_NEEDS[key] if s not in up]:
            selection.skipped.append(f"{key}: {_not_in_stack(missing)}")
        elif key == SUMMARY_JOBS and not await _worker_serving(endpoints.summary_worker_addr):
            worker = endpoints.summary_worker_addr
            selection.skipped.append(f"{key}: no summary worker answers at {worker}")
        else:
            selection.measurements.append(key)
    if selection.sends_messages:
        _check_send_limit(endpoints, selection)
    return selection


async def _worker_serving(address: str | None) -> bool:
    return bool(address) and await service_status(str(address), "") == "SERVING"


def _not_in_stack(services: Sequence[str]) -> str:
    names = " and ".join(f"the {service} service" for service in services)
    return f"{names} {'is' if len(services) == 1 else 'are'} not part of this stack"


def _check_send_limit(endpoints: Endpoints, selection: Selection) -> None:
    """Leave out what sends chat messages when the chat service's limit would refuse them."""
    limit = send_limit(endpoints.chat_addr) if endpoints.chat_addr else None
    if (reason := limit_too_low(limit)) is not None:
        selection.skipped += [
            f"{key}: {reason}" for key in sorted(_SENDS_MESSAGES & selection._keys())
        ]
        selection.scenarios = [s for s in selection.scenarios if s.key not in _SENDS_MESSAGES]
        selection.measurements = [m for m in selection.measurements if m not in _SENDS_MESSAGES]
        return
    described = limit.describe() if limit else "unknown (the chat process is not readable here)"
    selection.notes.append(f"chat send limit: {described}")
