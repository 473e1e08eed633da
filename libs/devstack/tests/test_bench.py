"""`make bench`: its parsers, meters and report; and a --smoke run against a real stack.

No test asserts a speed: the machine is shared. The smoke run proves the harness end to
end (every scenario measured some requests, none failed, the report was written).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from stack_harness import Stack, running_stack

from devstack import gateway_config
from devstack.bench import cpu, patient_cache
from devstack.bench.latency import LatencyHistogram
from devstack.bench.load_stats import LoadStats
from devstack.bench.report import (
    LATEST_RUN_HEADING,
    SCENARIO_PREFIX,
    merge_sections,
    reading,
    split_sections,
    write_document,
)
from devstack.bench.runner import BenchReport, RunPlan, RunResult
from devstack.bench.scenarios import SCENARIOS, select
from devstack.bench.wrk import HttpRequest, lua_script, parse_wrk_output, wrk_binary
from devstack.ports import free_port
from devstack.services import present_services

WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:8080/v1/users/me
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   105.92ms   26.40ms   1.20s    77.93%
    Req/Sec    75.38     21.31   118.00     67.68%
  Latency Distribution
     50%  980.00us
     75%  108.36ms
     90%  155.67ms
     99%    1.20s
  752 requests in 5.02s, 435.78KB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 12
Requests/sec:    149.72
Transfer/sec:     86.76KB
"""


def test_wrk_output_gives_requests_errors_and_percentiles() -> None:
    stats = parse_wrk_output(WRK_OUTPUT)
    assert stats.ok == 740
    assert stats.requests == 752 + 3  # socket errors are not among wrk's completed requests
    assert stats.errors == 15
    assert stats.error_kinds == {"non-2xx": 12, "socket read": 2, "socket timeout": 1}
    assert stats.seconds == pytest.approx(5.02)
    assert stats.p50_seconds == pytest.approx(980e-6)
    assert stats.p99_seconds == pytest.approx(1.2)


def test_a_clean_wrk_run_has_no_errors() -> None:
    clean = WRK_OUTPUT.replace("  Socket errors: connect 0, read 2, write 0, timeout 1\n", "")
    clean = clean.replace("  Non-2xx or 3xx responses: 12\n", "")
    stats = parse_wrk_output(clean)
    assert (stats.requests, stats.ok, stats.errors, stats.error_kinds) == (752, 752, 0, {})


def test_lua_script_carries_the_token_and_every_request() -> None:
    requests = [
        HttpRequest("GET", "/v1/patients/a"),
        HttpRequest("POST", "/v1/patients/b/notes", '{"content": "S: \\"quoted\\"\\nO: -"}'),
    ]
    script = lua_script(requests, "tok.en", threads=2)
    assert '["Authorization"] = [==[Bearer tok.en]==]' in script
    assert '{[==[POST]==], [==[/v1/patients/b/notes]==], [==[{"content": "S: \\"quoted' in script
    assert "thread_number or 0) * 1" in script  # the second thread starts half-way


def test_lua_script_refuses_text_that_would_end_its_strings() -> None:
    with pytest.raises(ValueError, match="contains"):
        lua_script([HttpRequest("POST", "/x", "]==]")], "t", threads=1)


def test_histogram_percentiles_are_within_one_percent() -> None:
    histogram = LatencyHistogram()
    for millisecond in range(1, 1001):
        histogram.record(millisecond / 1000)
    assert histogram.count == 1000
    assert histogram.percentile(50) == pytest.approx(0.5, rel=0.011)
    assert histogram.percentile(99) == pytest.approx(0.99, rel=0.011)
    assert histogram.percentile(100) == pytest.approx(1.0, rel=0.011)
    assert LatencyHistogram().percentile(50) is None


def test_listening_pids_finds_this_process_by_its_port() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert os.getpid() in cpu.listening_pids(listener.getsockname()[1])
    assert cpu.listening_pids(free_port()) == []


def test_cpu_readers_count_time_spent() -> None:
    reader = cpu.pids_seconds([os.getpid()])
    before = reader()
    deadline = cpu.own_process_seconds() + 0.05
    while cpu.own_process_seconds() < deadline:  # bounded: CPU time always advances
        sum(range(10_000))
    assert reader() > before
    assert cpu.process_times(2**22 + 1) is None  # above the default pid_max


def test_named_tree_counts_exited_children_once(tmp_path: Path) -> None:
    # A fake /proc: a postmaster (whose reaped backends sit in its children time) and one
    # live backend, beside an unrelated process.
    def stat(pid: int, name: str, parent: int, own: int, children: int) -> None:
        fields = ["S", str(parent)] + ["0"] * 9 + [str(own), "0", str(children), "0"]
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} ({name}) {' '.join(fields)} 0 0")

    stat(10, "postgres", 1, own=100, children=400)
    stat(11, "postgres", 10, own=50, children=0)
    stat(12, "envoy", 1, own=999, children=0)
    ticks = os.sysconf("SC_CLK_TCK")
    assert cpu.named_tree_seconds("postgres", tmp_path)() == pytest.approx(550 / ticks)


def test_cache_counters_are_read_from_prometheus_text() -> None:
    text = (
        "# TYPE cache_requests_total counter\n"
        'cache_requests_total{cache="patient",result="hit"} 90.0\n'
        'cache_requests_total{cache="patient",result="miss"} 10.0\n'
        'cache_requests_total{cache="other",result="miss"} 500.0\n'
    )
    after = patient_cache.parse_cache_reads(text)
    assert after == {"hit": 90.0, "miss": 10.0, "bypass": 0.0}
    assert patient_cache.hit_ratio({"hit": 0.0, "miss": 0.0}, after) == pytest.approx(0.9)
    assert patient_cache.hit_ratio(after, after) is None
    assert patient_cache.hit_ratio(None, after) is None


def test_unknown_scenarios_are_refused() -> None:
    assert [s.key for s in select(None)] == [s.key for s in SCENARIOS]
    with pytest.raises(ValueError, match="unknown scenarios"):
        select(["get_me", "nope"])


def _result(via: str, concurrency: int, ok: int, errors: int = 0) -> RunResult:
    stats = LoadStats(ok + errors, ok, errors, 10.0, 0.002, 0.02, {"UNAVAILABLE": errors})
    cpu_seconds = {"gateway": 0.5, "service": 2.0, "postgres": 1.0, "redis": 0.1}
    return RunResult(SCENARIOS[0], via, concurrency, stats, cpu_seconds, 0, None)


def _report(results: list[RunResult]) -> BenchReport:
    plan = RunPlan(10, 2, (1, 16), None, ("gateway", "direct"), 100)
    started = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    facts = [("CPUs (nproc)", "2")]
    return BenchReport("python -m devstack bench", started, plan, facts, [SCENARIOS[0]], results)


def test_reading_names_peaks_the_gateways_share_and_the_top_cpu_user() -> None:
    text = reading(
        [_result("gateway", 1, 500), _result("gateway", 16, 800), _result("direct", 16, 1600)]
    )
    assert "Gateway: peak 80 req/s at concurrency 16" in text
    assert "Direct: peak 160 req/s at concurrency 16" in text
    assert "Through the gateway: 50% of the direct peak." in text
    assert "most in service (2,500 µs)" in text
    assert text.endswith("Errors: 0.")


def test_document_keeps_sections_it_did_not_measure(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text(
        "# old title\n\nold intro\n\n## Latest run\n\nold run\n\n"
        "## Scenario: ListPatients\n\nkept numbers\n\n"
        "## Scenario: GetMe\n\nold GetMe numbers\n\n## Notes\n\nhand-written\n"
    )
    write_document(path, _report([_result("gateway", 1, 100)]))
    sections = dict(split_sections(path.read_text()))
    assert list(sections) == [
        LATEST_RUN_HEADING,
        f"{SCENARIO_PREFIX}ListPatients",
        f"{SCENARIO_PREFIX}GetMe",
        "Notes",
    ]
    assert sections[f"{SCENARIO_PREFIX}ListPatients"] == "kept numbers"
    assert sections["Notes"] == "hand-written"
    assert "| gateway · REST · wrk | 1 | 10.0 |" in sections[f"{SCENARIO_PREFIX}GetMe"]
    assert "`python -m devstack bench`" in sections[LATEST_RUN_HEADING]
    assert "| CPUs (nproc) | 2 |" in sections[LATEST_RUN_HEADING]
    assert path.read_text().startswith("# MedStation benchmarks")


def test_merge_appends_new_sections_after_the_kept_ones() -> None:
    merged = merge_sections("## Notes\n\nmine\n", {"Latest run": "now"})
    assert [heading for heading, _ in split_sections(merged)] == ["Notes", "Latest run"]


# --- a --smoke run against a real stack -------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[3]
PATIENT_SERVICE_PRESENT = any(s.key == "patient-record" for s in present_services(REPO_ROOT))
# A rate the gateway's token bucket never reaches in a smoke run.
_UNLIMITED = 1_000_000


@pytest.fixture(scope="module")
def bench_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The gateway's local rate limit (250 req/s, gateway-wide) would answer a benchmark
    # with 429s: raise it for this stack, whose purpose is to prove the harness. The
    # limiter itself is tested with the gateway.
    original = gateway_config.options_from_env

    def unlimited(*args: Any, **overrides: Any) -> gateway_config.GatewayOptions:
        options = original(*args, **overrides)
        return replace(options, rate_limit_tokens=_UNLIMITED, rate_limit_fill_per_second=_UNLIMITED)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gateway_config, "options_from_env", unlimited)
        with running_stack(tmp_path_factory.mktemp("bench-stack")) as stack:
            yield stack


@pytest.fixture(scope="module")
def smoke(bench_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The --smoke run's JSON results, its markdown report and its output."""
    out = tmp_path_factory.mktemp("bench-out")
    services = bench_stack.services
    patient = services.get("patient-record")
    command = [
        sys.executable, "-m", "devstack", "bench", "--smoke",
        "--gateway", bench_stack.gateway_url,
        "--envoy-admin", bench_stack.envoy_admin_url,
        "--user-addr", services["user"].address,
        "--patient-addr", patient.address if patient else "",
        "--patient-metrics",
        f"http://127.0.0.1:{patient.env['MEDSTATION_METRICS_PORT']}/metrics" if patient else "",
        "--output", str(out / "benchmarks.md"),
        "--json", str(out / "results.json"),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=400, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return {
        "results": json.loads((out / "results.json").read_text())["results"],
        "markdown": (out / "benchmarks.md").read_text(),
        "stdout": result.stdout,
    }


def _expected_scenarios() -> set[str]:
    return {s.key for s in SCENARIOS if PATIENT_SERVICE_PRESENT or s.service == "user"}


def _rows(smoke: dict[str, Any], via: str) -> list[dict[str, Any]]:
    return [row for row in smoke["results"] if row["via"] == via]


@pytest.mark.timeout(600)
def test_smoke_run_measures_every_scenario_directly_over_grpc(smoke: dict[str, Any]) -> None:
    rows = _rows(smoke, "direct")
    assert {(r["scenario"], r["concurrency"]) for r in rows} == {
        (key, level) for key in _expected_scenarios() for level in (1, 4)
    }
    for row in rows:
        assert row["requests"] > 0, row
        assert row["errors"] == 0, row
        assert row["cpu_us_per_request"]["service"] is not None, row


@pytest.mark.timeout(600)
def test_smoke_run_measures_every_scenario_through_the_gateway_with_wrk(
    smoke: dict[str, Any],
) -> None:
    if wrk_binary() is None:
        pytest.skip("wrk is not installed (`make bench-deps`); the gRPC rows still ran")
    rows = _rows(smoke, "gateway")
    assert {(r["scenario"], r["concurrency"]) for r in rows} == {
        (key, level) for key in _expected_scenarios() for level in (1, 4)
    }
    for row in rows:
        assert row["requests"] > 0, row
        assert row["errors"] == 0, row
        assert row["rate_limited"] == 0, row


@pytest.mark.timeout(600)
def test_smoke_run_writes_the_markdown_table(smoke: dict[str, Any]) -> None:
    markdown = smoke["markdown"]
    sections = dict(split_sections(markdown))
    assert "| CPUs (nproc) |" in sections[LATEST_RUN_HEADING]
    for scenario in SCENARIOS:
        if scenario.key in _expected_scenarios():
            table = sections[SCENARIO_PREFIX + scenario.title]
            assert "| path | conc | req/s | p50 ms | p99 ms |" in table
            assert "| direct · gRPC · grpc.aio | 4 |" in table
    assert "req/s" in smoke["stdout"]  # the terminal table
