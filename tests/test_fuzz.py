"""Schemathesis against the live gateway: no request it can make earns a server error.

`make test` runs a short pass as a clinician (MEDSTATION_FUZZ_EXAMPLES cases per operation and
phase, 15 by default). `make fuzz` runs the long one: 1000 cases, as a clinician and then as
the admin, and writes its numbers into docs/fuzzing.md (MEDSTATION_FUZZ_REPORT).
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from stack_harness import Accounts, Stack

from devstack import fuzz_report
from devstack.fuzz import FuzzRun, FuzzSettings, fuzz, served_document, write_report
from devstack.fuzz_targets import Identity

EXAMPLES = int(os.environ.get("MEDSTATION_FUZZ_EXAMPLES") or 15)
AS_ADMIN = os.environ.get("MEDSTATION_FUZZ_ADMIN", "") == "1"
REPORT = os.environ.get("MEDSTATION_FUZZ_REPORT", "")
# Fixed unless asked otherwise, so a failure in `make test` repeats; "random" for a new one.
SEED = os.environ.get("MEDSTATION_FUZZ_SEED", "2026")
# The short pass takes about a minute; the long one about a second per case per operation.
TIMEOUT = max(240, EXAMPLES * 12 * (2 if AS_ADMIN else 1))


def _explain(runs: list[FuzzRun]) -> str:
    lines = []
    for run in runs:
        lines += [f"{run.identity}: {problem} (log: {run.log})" for problem in run.failures()]
        for entry in run.stats.values():
            lines += [
                f"  {entry.label}: {sample.method} {sample.uri} {sample.request_body!r} "
                f"-> {sample.status} {sample.response_body!r}"
                for sample in entry.server_errors
            ]
    return "\n".join(lines)


@pytest.mark.timeout(TIMEOUT)
def test_fuzzing_the_rest_api_finds_no_server_error(stack: Stack, tmp_path: Path) -> None:
    settings = FuzzSettings(
        stack.gateway_url,
        examples=EXAMPLES,
        seed=None if SEED == "random" else int(SEED),
        timeout_seconds=TIMEOUT,
    )
    admin = Identity("admin", stack.admin_email, stack.admin_password) if AS_ADMIN else None

    runs = fuzz(settings, admin, tmp_path)

    write_report(runs, settings, Path(REPORT) if REPORT else None)
    assert not any(run.failures() for run in runs), _explain(runs)
    # Every documented operation was exercised, each with more than a handful of requests.
    documented = set(fuzz_report.documented_operations(served_document(stack.gateway_url)))
    for run in runs:
        assert documented - {"GET /openapi.json"} <= set(run.stats), run.identity
    # The prepared records were reached: not every case ended at "no such patient".
    clinician = runs[0].stats
    assert clinician["GET /v1/patients/{id}"].statuses[200] > 0
    assert clinician["POST /v1/chats/{chat_id}/messages"].statuses[200] > 0


# --- what fuzzing found, kept fixed -----------------------------------------------------------


def test_a_plus_in_the_query_string_is_a_space(api: httpx.Client, accounts: Accounts) -> None:
    doctor = accounts.clinician()

    # As a form encoder (Python's urlencode, an HTML form) writes `order_by=name desc`.
    response = api.get("/v1/patients?order_by=name+desc&page_size=1", headers=doctor.headers)

    assert response.status_code == 200, response.text
