"""`python -m devstack bench --smoke` against a stack of the test's own, end to end.

It proves the harness, not a speed (the machine is shared): every scenario measured
some requests on both paths and none failed; the baselines (echo ceilings, FastAPI
reference) were measured in the same run and every row got its ratio; the targets were
computed, memory was read, and the report and chart were written. Summaries, chat,
streamed replies and summary jobs (1 and 2 workers) included; afterwards the charts the
scenarios read are as seeded and CreateNote's scratch charts are empty. The stack's
gateway and chat limits are raised, as `make bench` does for a stack it starts.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc.aio
import pytest
from stack_harness import Stack, running_stack

from devstack import gateway_config
from devstack.api_session import ApiSession
from devstack.bench.baselines import (
    ECHO_DIRECT,
    ECHO_DIRECT_GRPC_AIO,
    ECHO_GATEWAY,
    ECHO_GATEWAY_BESIDE,
    FASTAPI,
)
from devstack.bench.chat_data import LIMIT_VARIABLE
from devstack.bench.cli import SMOKE_PATIENTS
from devstack.bench.dataset import (
    BENCH_CREDENTIALS,
    BENCH_MRN_PREFIX,
    SCRATCH_MRN_PREFIX,
    SCRATCH_PATIENTS,
    ensure_bench_data,
)
from devstack.bench.h2load import h2load_binary
from devstack.bench.reference import missing_modules
from devstack.bench.report import LATEST_RUN_HEADING, SCENARIO_PREFIX, split_sections
from devstack.bench.scenarios import SCENARIOS
from devstack.bench.targets import MET, target_level
from devstack.bench.wrk import wrk_binary
from devstack.services import present_services
from devstack.soap_notes import MAX_NOTES, MIN_NOTES
from medstation.patient.v1 import patient_service_pb2 as patient_pb
from medstation.patient.v1 import patient_service_pb2_grpc as patient_grpc

REPO_ROOT = Path(__file__).resolve().parents[3]
PRESENT = {s.key for s in present_services(REPO_ROOT)}
# A rate the gateway's token bucket never reaches in a smoke run.
_UNLIMITED = 1_000_000
# One level and no warm-up: every part still runs, in about half the time (the stack
# under test takes a core; the levels and warm-ups of `--smoke` only repeat the same code).
_SMOKE_LEVELS = (4,)
_SMOKE_JOBS = 6
_SOAK_SECONDS = 2
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bench_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The gateway's local rate limit (250 req/s, gateway-wide) would answer a benchmark
    # with 429s: raise it for this stack, whose purpose is to prove the harness. The
    # limiter itself is tested with the gateway. Likewise the chat service's per-user
    # send limit, as `make bench` asks of the stack it measures (see docs/benchmarks.md).
    original = gateway_config.options_from_env

    def unlimited(*args: Any, **overrides: Any) -> gateway_config.GatewayOptions:
        options = original(*args, **overrides)
        return replace(options, rate_limit_tokens=_UNLIMITED, rate_limit_fill_per_second=_UNLIMITED)

    suffix = secrets.token_hex(4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gateway_config, "options_from_env", unlimited)
        patch.setenv(LIMIT_VARIABLE, str(_UNLIMITED))
        # Streams of their own: a `make run` or another test stack on the same Redis
        # would otherwise take this stack's summary jobs and patient events.
        patch.setenv("MEDSTATION_EVENTS_STREAM", f"medstation.patient.events.bench-{suffix}")
        patch.setenv("MEDSTATION_JOBS_STREAM", f"medstation.summary.jobs.bench-{suffix}")
        with running_stack(tmp_path_factory.mktemp("bench-stack")) as stack:
            yield stack


@pytest.fixture(scope="module")
def smoke(bench_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The --smoke run's JSON results, its markdown report, chart and output."""
    out = tmp_path_factory.mktemp("bench-out")
    services = bench_stack.services
    patient = services.get("patient-record")
    summary, chat = services.get("summary"), services.get("chat")
    worker = bench_stack.workers.get("summary-worker")
    command = [
        sys.executable, "-m", "devstack", "bench", "--smoke",
        "--gateway", bench_stack.gateway_url,
        "--envoy-admin", bench_stack.envoy_admin_url,
        "--user-addr", services["user"].address,
        "--patient-addr", patient.address if patient else "",
        "--patient-metrics",
        f"http://127.0.0.1:{patient.env['MEDSTATION_METRICS_PORT']}/metrics" if patient else "",
        "--summary-addr", summary.address if summary else "",
        "--summary-worker-addr", worker.address if worker else "",
        "--chat-addr", chat.address if chat else "",
        "--concurrency", ",".join(str(level) for level in _SMOKE_LEVELS), "--warmup", "0",
        "--soak", str(_SOAK_SECONDS),
        "--output", str(out / "benchmarks.md"),
        "--json", str(out / "results.json"),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    document: dict[str, Any] = json.loads((out / "results.json").read_text())
    document["markdown"] = (out / "benchmarks.md").read_text()
    document["chart"] = out / "benchmarks.png"
    document["stdout"] = result.stdout
    return document


def _expected_scenarios() -> set[str]:
    return {s.key for s in SCENARIOS if {s.service, *s.requires} <= PRESENT | {"user"}}


def _rows(smoke: dict[str, Any], via: str) -> list[dict[str, Any]]:
    return [row for row in smoke["results"] if row["via"] == via]


def _by_name_target(smoke: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target under its words before the comparison sign."""
    return {re.split(" [≥≤]", t["target"])[0]: t for t in smoke["targets"]}


def _expected_baselines() -> set[str]:
    expected = {ECHO_DIRECT_GRPC_AIO}
    if h2load_binary() is not None:
        expected.add(ECHO_DIRECT)
    if wrk_binary() is not None:
        expected.add(ECHO_GATEWAY)
        if not missing_modules():
            expected.add(FASTAPI)
    return expected


@pytest.mark.timeout(900)
def test_smoke_run_measures_every_scenario_directly_over_grpc(smoke: dict[str, Any]) -> None:
    rows = _rows(smoke, "direct")
    assert {(r["scenario"], r["concurrency"]) for r in rows} == {
        (key, level) for key in _expected_scenarios() for level in _SMOKE_LEVELS
    }
    for row in rows:
        assert row["requests"] > 0, row
        assert row["errors"] == 0, row
        assert row["cpu_us_per_request"]["service"] is not None, row
        if h2load_binary() is not None:
            assert row["ratio_to_ceiling"] > 0, row


@pytest.mark.timeout(900)
def test_smoke_run_measures_every_scenario_through_the_gateway_with_wrk(
    smoke: dict[str, Any],
) -> None:
    if wrk_binary() is None:
        pytest.skip("wrk is not installed (`make bench-deps`); the gRPC rows still ran")
    rows = _rows(smoke, "gateway")
    assert {(r["scenario"], r["concurrency"]) for r in rows} == {
        (key, level) for key in _expected_scenarios() for level in _SMOKE_LEVELS
    }
    for row in rows:
        assert row["requests"] > 0, row
        assert row["errors"] == 0, row
        assert row["rate_limited"] == 0, row
        assert row["ratio_to_ceiling"] > 0, row


@pytest.mark.timeout(900)
def test_smoke_run_measures_the_ceilings_and_the_reference_at_every_level(
    smoke: dict[str, Any],
) -> None:
    rows = smoke["baselines"]
    beside = [r for r in rows if r["baseline"] == ECHO_GATEWAY_BESIDE]
    assert {(r["baseline"], r["concurrency"]) for r in rows if r not in beside} == {
        (key, level) for key in _expected_baselines() for level in _SMOKE_LEVELS
    }
    if ECHO_GATEWAY in _expected_baselines() and "patient-record" in PRESENT:
        # The echo again right before and right after GetPatient (one patient) through
        # the gateway at the targets' level, which its target is read against.
        assert [r["concurrency"] for r in beside] == [target_level(_SMOKE_LEVELS)] * 2
        one = _by_name_target(smoke)["GetPatient from cache (one patient, read again and again)"]
        assert "the echo through the gateway right before and after it" in one["numbers"]
    else:
        assert beside == []
    for row in rows:
        assert row["ok"] > 0, row
        assert row["errors"] == 0, row
        assert row["p99_ms"] is not None, row
        assert row["cpu_us_per_request"]["service"] is not None, row
    if FASTAPI not in _expected_baselines():
        assert any(line.startswith("FastAPI reference: ") for line in smoke["skipped"])


@pytest.mark.timeout(900)
def test_smoke_run_searches_patients_fuzzily_and_finds_some(smoke: dict[str, Any]) -> None:
    if "patient-record" not in PRESENT:
        pytest.skip("services/patient_record is not in this checkout")
    rows = [r for r in smoke["results"] if r["scenario"] == "search_patients"]
    assert rows
    assert all(r["ok"] > 0 and r["errors"] == 0 for r in rows)


@pytest.mark.timeout(900)
def test_smoke_run_counts_each_runs_patient_cache_hits(smoke: dict[str, Any]) -> None:
    if "patient-record" not in PRESENT:
        pytest.skip("services/patient_record is not in this checkout")
    rows = smoke["results"]
    # Only the reads of each run's own window: GetMe reads no patient, whatever came before.
    get_me = [r for r in rows if r["scenario"] == "get_me"]
    assert get_me
    assert all(row["cache_hit_ratio"] is None for row in get_me), get_me
    one_patient = [r for r in rows if r["scenario"] == "get_patient_hit"]
    assert one_patient
    for row in one_patient:  # all but the first few reads of one patient hit
        assert row["cache_hit_ratio"] is not None, row
        assert row["cache_hit_ratio"] > 0.5, row


@pytest.mark.timeout(900)
def test_smoke_run_computes_every_target_and_reads_memory(smoke: dict[str, Any]) -> None:
    targets = {t["target"]: t for t in smoke["targets"]}
    assert len(targets) == 7
    assert targets["no error at any level (429s included)"]["verdict"] == MET
    memory = {row["process"]: row for row in smoke["memory"]}
    assert "user" in memory
    assert "gateway (Envoy)" in memory
    for row in memory.values():
        assert row["idle_rss_bytes"] > 0, row
        assert row["after_rss_bytes"] > 0, row


@pytest.mark.timeout(900)
def test_smoke_run_soaks_at_half_the_measured_capacity(smoke: dict[str, Any]) -> None:
    if "patient-record" not in PRESENT or wrk_binary() is None:
        assert any(line.startswith("soak: ") for line in smoke["skipped"])
        return
    soak = smoke["soak"]
    assert soak["seconds"] == _SOAK_SECONDS
    assert soak["target_rate"] == pytest.approx(soak["capacity"] / 2)
    assert soak["achieved_rate"] > 0
    assert soak["errors"] == 0
    verdict = next(t for t in smoke["targets"] if t["target"].startswith("no RSS growth"))
    assert verdict["verdict"] == "not measured"  # seconds, not the ten minutes it asks


@pytest.mark.timeout(900)
def test_smoke_run_gives_summaries_written_now_a_fresh_batch_per_run(
    smoke: dict[str, Any],
) -> None:
    if "get_summary_fresh" not in _expected_scenarios():
        pytest.skip("services/summary is not in this checkout")
    rows = [r for r in smoke["results"] if r["scenario"] == "get_summary_fresh"]
    assert rows
    assert all(r["fresh_batch"] for r in rows)


async def _charts(
    session: ApiSession, patients: patient_grpc.PatientRecordServiceAsyncStub
) -> dict[str, tuple[str, int]]:
    """The bench clinician's patients: (MRN, how many notes) by patient id."""
    charts: dict[str, tuple[str, int]] = {}
    request = patient_pb.ListPatientsRequest(page_size=100)
    while True:
        page = await patients.ListPatients(request, metadata=await session.metadata())
        for patient in page.patients:
            notes = await patients.ListNotes(
                patient_pb.ListNotesRequest(patient_id=patient.id, page_size=100),
                metadata=await session.metadata(),
            )
            charts[patient.id] = (patient.mrn, len(notes.notes))
        if not page.next_page_token:
            return charts
        request.page_token = page.next_page_token


@pytest.mark.timeout(900)
async def test_smoke_run_writes_notes_only_to_scratch_patients_and_empties_them_after(
    smoke: dict[str, Any], bench_stack: Stack
) -> None:
    if "create_note" not in _expected_scenarios():
        pytest.skip("services/patient_record is not in this checkout")
    latest = dict(split_sections(smoke["markdown"]))[LATEST_RUN_HEADING]
    assert f"CreateNote wrote to {SCRATCH_PATIENTS} scratch patients of its own" in latest
    assert "FAILED" not in latest
    users = bench_stack.services["user"].address
    records = bench_stack.services["patient-record"].address
    async with (
        grpc.aio.insecure_channel(users) as user_channel,
        grpc.aio.insecure_channel(records) as patient_channel,
    ):
        session = ApiSession(user_channel, BENCH_CREDENTIALS)
        patients = patient_grpc.PatientRecordServiceStub(patient_channel)
        charts = await _charts(session, patients)
        # A later run asking for more read patients than were seeded: the scratch
        # patients, made after the read ones, must not make up the difference.
        more = await ensure_bench_data(session, patients, SMOKE_PATIENTS + 10, io.StringIO())
    read = [notes for mrn, notes in charts.values() if mrn.startswith(BENCH_MRN_PREFIX)]
    scratch = [notes for mrn, notes in charts.values() if mrn.startswith(SCRATCH_MRN_PREFIX)]
    assert len(read) == SMOKE_PATIENTS
    assert all(MIN_NOTES <= notes <= MAX_NOTES for notes in read)  # as seeded
    assert scratch == [0] * SCRATCH_PATIENTS
    assert len(more.patient_ids) == SMOKE_PATIENTS + 10
    assert not set(more.patient_ids) & {
        patient_id for patient_id, (mrn, _) in charts.items() if mrn.startswith(SCRATCH_MRN_PREFIX)
    }


@pytest.mark.timeout(900)
def test_smoke_run_times_the_first_chunk_of_streamed_replies(smoke: dict[str, Any]) -> None:
    if "chat" not in PRESENT:
        assert any(line.startswith("stream_message: ") for line in smoke["skipped"])
        return
    assert {(r["via"], r["concurrency"]) for r in smoke["streams"]} == {
        (via, level) for via in ("gateway", "direct") for level in _SMOKE_LEVELS
    }
    for row in smoke["streams"]:
        assert row["ok"] > 0, row
        assert row["errors"] == 0, row
        assert row["first_chunk_p50_ms"] <= row["complete_p50_ms"], row
        assert row["cpu_us_per_stream"]["service"] is not None, row


@pytest.mark.timeout(900)
def test_smoke_run_ends_every_summary_job_with_one_worker_and_two(smoke: dict[str, Any]) -> None:
    if not {"summary", "patient-record"} <= PRESENT:
        assert any(line.startswith("summary_jobs: ") for line in smoke["skipped"])
        return
    assert [row["workers"] for row in smoke["jobs"]] == [1, 2]
    for row in smoke["jobs"]:
        assert (row["jobs"], row["succeeded"]) == (_SMOKE_JOBS, _SMOKE_JOBS), row
        assert row["cpu_ms_per_job"]["workers"] is not None, row


@pytest.mark.timeout(900)
def test_smoke_run_writes_the_markdown_tables_and_the_chart(smoke: dict[str, Any]) -> None:
    markdown = smoke["markdown"]
    sections = dict(split_sections(markdown))
    assert list(sections)[:4] == [LATEST_RUN_HEADING, "Targets", "Ceilings and reference", "Memory"]
    assert "| CPUs (nproc) |" in sections[LATEST_RUN_HEADING]
    assert "| echo · direct · gRPC · grpc.aio | 4 |" in sections["Ceilings and reference"]
    if "patient-record" in PRESENT and wrk_binary() is not None:
        assert "| patient-record |" in sections["Soak"]
    assert "| user |" in sections["Memory"]
    for scenario in SCENARIOS:
        if scenario.key in _expected_scenarios():
            table = sections[SCENARIO_PREFIX + scenario.title]
            assert "| path | conc | req/s | x ceiling | p50 ms | p99 ms |" in table
            assert "| direct · gRPC · grpc.aio | 4 |" in table
    if "chat" in PRESENT:
        assert "chat send limit: 1,000,000 messages" in sections[LATEST_RUN_HEADING]
        streams = sections[f"{SCENARIO_PREFIX}StreamMessage (time to first chunk)"]
        assert "| gateway · REST NDJSON · httpx | 4 |" in streams
    if {"summary", "patient-record"} <= PRESENT:
        jobs = sections[f"{SCENARIO_PREFIX}Summary jobs (end to end)"]
        assert f"| 2 | {_SMOKE_JOBS} | {_SMOKE_JOBS} | 0 | 0 |" in jobs
    if importlib.util.find_spec("matplotlib") is None:
        assert any(line.startswith("chart: ") for line in smoke["skipped"])
    else:
        assert smoke["chart"].read_bytes().startswith(_PNG_SIGNATURE)
        assert "](benchmarks.png)" in sections[LATEST_RUN_HEADING]
    assert "req/s" in smoke["stdout"]  # the terminal table
    assert "bench: finished in " in smoke["stdout"]
