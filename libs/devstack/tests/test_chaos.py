"""The fault suite, short: every scenario once against a stack of its own.

One run (the module fixture) starts its own PostgreSQL, Redis, services and Envoy and
crashes them in turn; each test then reads one scenario's verdict. The only timed
requirements are the product's (NOT_SERVING within 1 s of SIGTERM, recovery within 10 s
of PostgreSQL's return); every wait in the suite has a hard cap.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.chaos.faults import RECOVERY_WITHIN_SECONDS
from devstack.chaos.report import Result
from devstack.chaos.runner import SuiteReport, run

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> SuiteReport:
    workdir: Path = tmp_path_factory.mktemp("chaos")
    report = run(workdir, short=True)
    print(report.text())  # shown with -s, and by pytest for a failing test
    return report


def _result(report: SuiteReport, prefix: str) -> Result:
    (result,) = [r for r in report.results if r.scenario.startswith(prefix)]
    assert result.passed, f"{result.scenario}: {result.problems}\n{report.text()}"
    return result


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
def test_losing_a_replica_under_load_fails_no_read_and_loses_no_write(
    report: SuiteReport, signal_name: str
) -> None:
    result = _result(report, f"patient-record replica {signal_name}")

    assert result.requests > 0
    assert result.read_errors == 0
    assert result.lost_writes == 0


def test_after_a_postgres_crash_the_services_recover_by_themselves(report: SuiteReport) -> None:
    result = _result(report, "PostgreSQL restart")

    assert result.recovery_seconds is not None
    assert result.recovery_seconds <= RECOVERY_WITHIN_SECONDS
    assert result.lost_writes == 0


def test_without_redis_everything_works_and_queued_jobs_complete_after(
    report: SuiteReport,
) -> None:
    result = _result(report, "Redis stop")

    assert result.read_errors == 0
    assert result.write_errors == 0
    assert (result.lost_writes, result.lost_jobs) == (0, 0)


def test_a_worker_killed_mid_job_loses_no_job(report: SuiteReport) -> None:
    result = _result(report, "summary worker kill")

    assert result.lost_jobs == 0


def test_no_call_to_patient_record_leaves_without_a_deadline(report: SuiteReport) -> None:
    result = _result(report, "outgoing calls carry a deadline")

    assert result.requests > 0
    assert result.read_errors == 0  # calls without a deadline


def test_retried_creates_return_the_first_result(report: SuiteReport) -> None:
    operations = {check.operation: check for check in report.idempotency}

    assert set(operations) == {"CreatePatient", "CreateNote", "CreateSummaryJob", "SendMessage"}
    for check in operations.values():
        assert check.passed, f"{check.operation}: {check.problems}"
        assert check.repeat_returns_first
        assert 400 <= check.other_body_status < 500
