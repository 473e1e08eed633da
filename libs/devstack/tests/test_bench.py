"""`make bench`: its parsers, meters and report (the --smoke run against a real stack is
in test_bench_smoke.py, the baselines, targets, memory and chart in test_bench_baselines.py).

No test asserts a speed: the machine is shared.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from devstack.bench import cpu, patient_cache, runner, selection
from devstack.bench.chat_data import LIMIT_VARIABLE, SendLimit, limit_too_low
from devstack.bench.dataset import BenchData
from devstack.bench.latency import LatencyHistogram
from devstack.bench.load_stats import LoadStats
from devstack.bench.plan import Endpoints, RunPlan
from devstack.bench.processes import process_image, process_listening_on
from devstack.bench.report import (
    LATEST_RUN_HEADING,
    SCENARIO_PREFIX,
    markdown_table,
    merge_sections,
    reading,
    results_json,
    scenario_section,
    split_sections,
    write_document,
)
from devstack.bench.results import BenchReport, RunResult
from devstack.bench.scenarios import SCENARIOS, chat_cycle, select
from devstack.bench.stream_runs import StreamResult
from devstack.bench.streaming import (
    StreamFailed,
    StreamStats,
    http_stream_call,
    run_stream_load,
)
from devstack.bench.summary_data import batch_size
from devstack.bench.summary_jobs import tally_jobs
from devstack.bench.tool_run import run_to_end
from devstack.bench.wrk import HttpRequest, lua_script, parse_wrk_output
from devstack.ports import free_port
from medstation.summary.v1 import summary_service_pb2 as summary_pb

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


_METRICS = (
    "# HELP cache_requests_total Reads of an in-process cache.\n"
    "# TYPE cache_requests_total counter\n"
    'cache_requests_total{cache="patient",result="hit"} 90.0\n'
    'cache_requests_total{result="miss",cache="patient"} 10.0\n'
    'cache_requests_created{cache="patient",result="hit"} 1.7e+09\n'
    'cache_requests_total{cache="other",result="miss"} 500.0\n'
)


def test_patient_cache_counters_are_read_from_prometheus_text() -> None:
    assert patient_cache.parse_cache_reads(_METRICS) == patient_cache.CacheReads(100.0, 90.0)
    assert patient_cache.parse_cache_reads("# no cache here\n") == patient_cache.CacheReads(0, 0)


def test_the_hit_ratio_is_the_share_of_hits_among_the_reads_between_two_readings() -> None:
    before = patient_cache.CacheReads(reads=100.0, hits=90.0)
    after = patient_cache.CacheReads(reads=300.0, hits=140.0)
    assert patient_cache.hit_ratio(before, after) == pytest.approx(0.25)  # 50 of 200
    assert patient_cache.hit_ratio(after, after) is None  # no read in between
    assert patient_cache.hit_ratio(None, after) is None
    assert patient_cache.hit_ratio(before, None) is None
    restarted = patient_cache.CacheReads(reads=20.0, hits=19.0)
    assert patient_cache.hit_ratio(before, restarted) is None


class _MetricsHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        found = self.path == "/metrics"
        body = _METRICS.encode() if found else b"not here"
        self.send_response(200 if found else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: pytest shows stderr of failing tests only


@pytest.fixture
def metrics_server() -> Iterator[str]:
    """A Prometheus endpoint on a free port, serving _METRICS at /metrics."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MetricsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_patient_cache_counters_are_scraped_or_none_when_unreadable(
    metrics_server: str,
) -> None:
    scraped = await patient_cache.cache_reads(f"{metrics_server}/metrics")
    assert scraped == patient_cache.CacheReads(100.0, 90.0)
    assert await patient_cache.cache_reads(f"{metrics_server}/elsewhere") is None  # 404
    assert await patient_cache.cache_reads(f"http://127.0.0.1:{free_port()}/metrics") is None
    assert await patient_cache.cache_reads("") is None
    assert await patient_cache.cache_reads(None) is None


def test_unknown_scenarios_are_refused() -> None:
    assert [s.key for s in select(None)] == [s.key for s in SCENARIOS]
    assert [s.key for s in select(["send_message", "summary_jobs"])] == ["send_message"]
    with pytest.raises(ValueError, match="unknown scenarios"):
        select(["get_me", "nope"])


def test_the_chat_cycle_asks_every_chat_every_question() -> None:
    data = BenchData((), (), chat_ids=("a", "b"), questions=("q1", "q2", "q3"))
    cycle = chat_cycle(data)
    assert set(cycle) == {(chat, q) for chat in ("a", "b") for q in ("q1", "q2", "q3")}
    assert [chat for chat, _ in cycle[:4]] == ["a", "b", "a", "b"]  # chats take turns


def test_fresh_batches_cover_the_expected_requests_within_the_pool() -> None:
    assert batch_size(20.0, 10, concurrency=4, pool=1000) == 20 * 10 * 3 // 2 + 8
    assert batch_size(20.0, 10, concurrency=4, pool=100) == 100
    assert batch_size(None, 2, concurrency=1, pool=1000) > 0  # a first guess before any rate


def test_a_low_chat_send_limit_skips_with_the_variable_to_raise() -> None:
    reason = limit_too_low(SendLimit(30, 60, "the chat service's default"))
    assert reason is not None
    assert f"{LIMIT_VARIABLE}=" in reason
    assert limit_too_low(SendLimit(1_000_000, 60, "env")) is None
    assert limit_too_low(None) is None  # unknown: sent anyway, refusals are counted


def test_this_process_is_found_by_its_listening_port() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        image = process_listening_on(f"127.0.0.1:{listener.getsockname()[1]}")
    assert image is not None
    assert image.pid == os.getpid()
    assert image.env.get("PATH") == os.environ.get("PATH")
    assert process_listening_on(f"127.0.0.1:{free_port()}") is None
    assert process_image(2**22 + 1) is None


def _endpoints() -> Endpoints:
    return Endpoints(
        "http://127.0.0.1:1", None, "127.0.0.1:2", "127.0.0.1:3", False, "pg", "redis",
        summary_addr="127.0.0.1:4", chat_addr="127.0.0.1:5", summary_worker_addr="127.0.0.1:6",
    )  # fmt: skip


def test_scenarios_of_services_not_in_the_stack_are_skipped_with_a_reason() -> None:
    plan = RunPlan(1, 0, (1,), None, ("direct",), 10)
    chosen = asyncio.run(selection.runnable(plan, _endpoints(), frozenset({"patient-record"})))
    assert {s.key for s in chosen.scenarios} == {
        s.key for s in SCENARIOS if s.service in ("user", "patient-record")
    }
    assert chosen.measurements == []
    assert "GetSummary (stored): the summary service is not part of this stack" in chosen.skipped
    assert "SendMessage: the chat service is not part of this stack" in chosen.skipped
    assert "stream_message: the chat service is not part of this stack" in chosen.skipped
    assert any(line.startswith("summary_jobs: ") for line in chosen.skipped)


_LISTENER = (
    "import socket, sys, time\n"
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
    "print(s.getsockname()[1], flush=True); time.sleep(60)\n"
)


@pytest.mark.parametrize(("limit", "runs"), [(None, False), ("30", False), ("1000000", True)])
def test_sending_scenarios_run_only_under_a_raised_chat_send_limit(
    limit: str | None, runs: bool
) -> None:
    # A stand-in chat process: what counts is the environment it was started with.
    env = {k: v for k, v in os.environ.items() if k != LIMIT_VARIABLE}
    if limit is not None:
        env[LIMIT_VARIABLE] = limit
    with subprocess.Popen(
        [sys.executable, "-c", _LISTENER], env=env, stdout=subprocess.PIPE
    ) as process:
        try:
            assert process.stdout is not None
            port = int(process.stdout.readline())
            endpoints = replace(_endpoints(), chat_addr=f"127.0.0.1:{port}")
            plan = RunPlan(1, 0, (1,), ["send_message", "stream_message"], ("direct",), 10)
            chosen = asyncio.run(selection.runnable(plan, endpoints, frozenset({"chat"})))
        finally:
            process.kill()
    assert ([s.key for s in chosen.scenarios], chosen.measurements) == (
        (["send_message"], ["stream_message"]) if runs else ([], [])
    )
    if runs:
        assert chosen.notes == [
            f"chat send limit: 1,000,000 messages per 60 s per user ({LIMIT_VARIABLE} in the "
            "chat process's environment)"
        ]
    else:
        assert [line.split(":")[0] for line in chosen.skipped] == ["send_message", "stream_message"]
        assert all(f"{LIMIT_VARIABLE}=1000000" in line for line in chosen.skipped)


def _ndjson_client(status: int, lines: list[dict[str, Any]]) -> httpx.AsyncClient:
    body = "".join(json.dumps(line) + "\n" for line in lines)

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer tok"
        return httpx.Response(status, content=body.encode())

    return httpx.AsyncClient(base_url="http://gateway", transport=httpx.MockTransport(answer))


def _stream_once(status: int, lines: list[dict[str, Any]]) -> float:
    data = BenchData((), (), chat_ids=("c",), questions=("q",))

    async def run() -> float:
        async with _ndjson_client(status, lines) as client:
            return await http_stream_call(client, data, "tok")(0)

    return asyncio.run(run())


def test_a_gateway_stream_counts_only_when_its_reply_completed() -> None:
    completed = {"completed": {"assistant_message": {"content": "ab"}}}
    assert _stream_once(200, [{"delta": "a"}, {"delta": "b"}, completed]) >= 0
    with pytest.raises(StreamFailed, match="incomplete"):
        _stream_once(200, [{"delta": "a"}])
    with pytest.raises(StreamFailed, match="HTTP 429"):
        _stream_once(429, [{"code": 8, "message": "slow down"}])
    with pytest.raises(StreamFailed, match="error in stream"):
        _stream_once(200, [{"delta": "a"}, {"code": 14, "message": "gone"}])


def test_stream_load_counts_successes_and_failures_by_kind() -> None:
    async def call(n: int) -> float:
        if n % 2:
            raise StreamFailed("incomplete")
        await asyncio.sleep(0)
        return 0.001

    stats = asyncio.run(run_stream_load(call, concurrency=2, duration=0.05, call_timeout=5))
    assert stats.load.ok > 0
    assert stats.load.errors == stats.load.error_kinds["incomplete"] > 0
    assert stats.first_p50_seconds == pytest.approx(0.001, rel=0.011)


def _job(state: str, created: float, ended: float) -> summary_pb.SummaryJob:
    def stamp(seconds: float) -> Timestamp:
        return Timestamp(seconds=int(seconds), nanos=int(seconds % 1 * 1e9))

    return summary_pb.SummaryJob(
        id=secrets.token_hex(4), state=state, created_at=stamp(created), updated_at=stamp(ended)
    )


def test_jobs_are_timed_by_their_own_timestamps() -> None:
    jobs = [
        _job("SUCCEEDED", 100.0, 101.0),
        _job("SUCCEEDED", 100.5, 104.0),
        _job("FAILED", 100.2, 102.0),
        _job("RUNNING", 100.3, 100.4),
    ]
    result = tally_jobs(2, 5, 4, {job.id: job for job in jobs}, {"workers": 0.5})
    assert (result.succeeded, result.failed, result.unfinished) == (2, 2, 1)  # 1 not created
    assert result.seconds == pytest.approx(4.0)  # first creation to last end
    assert result.jobs_per_second == pytest.approx(0.5)
    assert result.p50_seconds == pytest.approx(1.0, rel=0.011)
    assert result.p99_seconds == pytest.approx(3.5, rel=0.011)
    assert result.cpu_ms_per_job("workers") == pytest.approx(250)


def _result(via: str, concurrency: int, ok: int, errors: int = 0) -> RunResult:
    stats = LoadStats(ok + errors, ok, errors, 10.0, 0.002, 0.02, {"UNAVAILABLE": errors})
    cpu_seconds = {"gateway": 0.5, "service": 2.0, "postgres": 1.0, "redis": 0.1}
    return RunResult(SCENARIOS[0], via, concurrency, stats, cpu_seconds, 0)


def _cache_hits_cells(table: str) -> list[str]:
    """The cache hits cell of each row of a markdown table."""
    header, _, *rows = table.splitlines()
    column = [cell.strip() for cell in header.split("|")].index("cache hits")
    return [[cell.strip() for cell in row.split("|")][column] for row in rows]


def test_the_cache_hits_column_shows_each_runs_share_of_hits() -> None:
    one_patient = next(s for s in SCENARIOS if s.key == "get_patient_hit")
    stats = LoadStats(100, 100, 0, 10.0, 0.002, 0.02)
    rows = [
        RunResult(one_patient, "gateway", 1, stats, {}, 0, cache_hit_ratio=0.999),
        RunResult(one_patient, "direct", 1, stats, {}, 0, cache_hit_ratio=0.5),
        _result("gateway", 1, 100),  # GetMe: no patient cache read
    ]
    assert _cache_hits_cells(markdown_table(rows)) == ["99.9%", "50.0%", "-"]
    report = _report(rows)
    assert [r["cache_hit_ratio"] for r in json.loads(results_json(report))["results"]] == [
        0.999,
        0.5,
        None,
    ]


def _fresh_result(requests: int, batch: int) -> RunResult:
    fresh = next(s for s in SCENARIOS if s.fresh_summaries)
    stats = LoadStats(requests, requests, 0, 10.0, 0.01, 0.02)
    return RunResult(fresh, "direct", 1, stats, {}, None, fresh_batch=batch)


def test_fresh_summary_sections_say_when_a_run_outgrew_its_batch() -> None:
    fresh = next(s for s in SCENARIOS if s.fresh_summaries)
    within = scenario_section(fresh, [_fresh_result(90, 100)], _report([]))
    beyond = scenario_section(fresh, [_fresh_result(90, 100), _fresh_result(130, 100)], _report([]))
    assert "No run made more requests than its batch had patients." in within
    assert "1 of 2 runs made more requests than their batch had patients: up to 30" in beyond


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
        "Targets",
        f"{SCENARIO_PREFIX}ListPatients",
        f"{SCENARIO_PREFIX}GetMe",
        "Notes",
    ]
    assert sections[f"{SCENARIO_PREFIX}ListPatients"] == "kept numbers"
    assert sections["Notes"] == "hand-written"
    get_me = sections[f"{SCENARIO_PREFIX}GetMe"]
    assert (
        "| path | conc | req/s | x ceiling | p50 ms | p99 ms | errors | 429s | cache hits | CPU"
        in get_me
    )
    assert "| gateway · REST · wrk | 1 | 10.0 | - |" in get_me
    assert "`python -m devstack bench`" in sections[LATEST_RUN_HEADING]
    assert "| CPUs (nproc) | 2 |" in sections[LATEST_RUN_HEADING]
    assert path.read_text().startswith("# MedStation benchmarks")


def test_sections_of_scenarios_the_bench_no_longer_has_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text(
        "## Scenario: GetPatient (cache hit)\n\nretired numbers\n\n"
        "## Scenario: ListPatients\n\nkept numbers\n\n"
        "## Notes on GetPatient (cache hit)\n\nhand-written\n"
    )
    write_document(path, _report([]))
    sections = dict(split_sections(path.read_text()))
    assert f"{SCENARIO_PREFIX}GetPatient (cache hit)" not in sections
    assert sections[f"{SCENARIO_PREFIX}ListPatients"] == "kept numbers"
    assert sections["Notes on GetPatient (cache hit)"] == "hand-written"


def test_document_gets_stream_and_job_tables(tmp_path: Path) -> None:
    load = LoadStats(20, 19, 1, 2.0, 0.05, 0.2, {"HTTP 429": 1})
    streams = [
        StreamResult("direct", 1, StreamStats(load, 0.01, 0.03), {"service": 0.38}),
        StreamResult("gateway", 1, StreamStats(load, 0.02, 0.04), {"service": 0.38}),
    ]
    two_jobs = [_job("SUCCEEDED", 0, 2), _job("SUCCEEDED", 0, 2)]
    one = tally_jobs(1, 2, 2, {job.id: job for job in two_jobs}, {})
    jobs = [one, replace(one, workers=2, seconds=1.0)]
    report = _report([])
    report.streams, report.jobs = streams, jobs
    path = tmp_path / "benchmarks.md"
    write_document(path, report)
    sections = dict(split_sections(path.read_text()))
    stream_table = sections[f"{SCENARIO_PREFIX}StreamMessage (time to first chunk)"]
    assert "| direct · gRPC stream · grpc.aio | 1 | 9.5 | 10.00 | 30.00 | 50.00 |" in stream_table
    assert "1 (HTTP 429 1)" in stream_table
    assert "Direct: first chunk after 10.0 ms (p50) at concurrency 1" in stream_table
    jobs_table = sections[f"{SCENARIO_PREFIX}Summary jobs (end to end)"]
    assert "| 1 | 2 | 2 | 0 | 0 | 1.0 | 2.02 | 2.02 |" in jobs_table  # 1 %-wide buckets
    assert "2 workers: 2.0 jobs/s (2.00 times one worker's)." in jobs_table
    assert jobs_table.startswith("Summary jobs end to end: 2 jobs queued at once")


def test_merge_puts_the_runs_summary_first_and_appends_other_new_sections() -> None:
    merged = merge_sections(
        "## Notes\n\nmine\n\n## Targets\n\nold\n",
        {"Scenario: GetMe": "numbers", "Targets": "new", "Latest run": "now"},
    )
    sections = split_sections(merged)
    assert [heading for heading, _ in sections] == [
        "Latest run", "Targets", "Notes", "Scenario: GetMe"
    ]  # fmt: skip
    assert dict(sections)["Targets"] == "new"


class _ToolFailed(Exception):
    pass


async def test_a_load_tool_run_returns_its_output_or_says_how_it_failed() -> None:
    assert await run_to_end(["sh", "-c", "echo done"], seconds=1, error=_ToolFailed) == "done\n"
    with pytest.raises(_ToolFailed, match=r"sh exited with 3:\nbroken"):
        await run_to_end(["sh", "-c", "echo broken; exit 3"], seconds=1, error=_ToolFailed)


def test_a_run_moves_the_cycle_by_what_each_of_its_walkers_read() -> None:
    # Two wrk threads a stride apart each read half of the requests.
    assert runner.cycle_advance(3_000, walkers=2) == 1_500
    assert runner.cycle_advance(3_000, walkers=1) == 3_000  # the gRPC generator
