"""`make bench`'s baselines and verdicts: h2load's output, the echo service's types and
gateway config, ratios to the ceilings, issue 9's targets, memory, the soak's pacing, the
report's new sections and the chart; and when the bench starts a stack of its own.

No test asserts a speed: every number here is made up, or only checked to exist.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devstack import envoy, gateway_config
from devstack.bench import cli, own_stack
from devstack.bench.baselines import (
    ECHO_DIRECT,
    ECHO_GATEWAY,
    ECHO_GATEWAY_BESIDE,
    FASTAPI,
    BaselineResult,
    ratio_to_ceiling,
)
from devstack.bench.ceilings import UNREACHED_RATE_LIMIT, echo_gateway_options
from devstack.bench.chart import chart_points, write_chart
from devstack.bench.dataset import BenchData, fuzzy_queries
from devstack.bench.echo.descriptors import (
    ECHO_SERVICE,
    compile_echo,
    echo_types,
    grpc_frame,
    merged_descriptor_set,
    read_descriptor_set,
)
from devstack.bench.gateway_stats import RateLimit, find_rate_limit, rate_limit_notes
from devstack.bench.h2load import h2load_command, parse_h2load
from devstack.bench.load_stats import LoadStats
from devstack.bench.memory import (
    MIB,
    MemoryReport,
    Watched,
    parse_vm_rss,
    rss_bytes,
    watched_processes,
)
from devstack.bench.plan import RunPlan
from devstack.bench.report import split_sections, write_document
from devstack.bench.results import BenchReport, RunResult
from devstack.bench.scenarios import SCENARIOS
from devstack.bench.soak import SoakChunk, SoakResult, first_delay_ms, next_delay_ms
from devstack.bench.summary_jobs import JobsResult
from devstack.bench.targets import (
    MET,
    NOT_MEASURED,
    NOT_MET,
    TargetCheck,
    evaluate,
    target_level,
)
from devstack.bench.wrk import HttpRequest, lua_script
from devstack.ports import free_port

H2LOAD_OUTPUT = """starting benchmark...
finished in 4.00s, 4648.00 req/s, 322.75KB/s
requests: 13950 total, 13950 started, 13950 done, 13944 succeeded, 6 failed, 2 errored, 0 timeout
status codes: 13944 2xx, 0 3xx, 0 4xx, 4 5xx
"""


def _h2load_log(latencies_us: list[int], failed_statuses: list[int]) -> str:
    lines = [f"1795334429281483\t200\t{us}" for us in latencies_us]
    lines += [f"1795334429281483\t{status}\t100" for status in failed_statuses]
    return "\n".join(lines) + "\n"


def test_h2load_gives_successes_errors_and_percentiles_from_its_log() -> None:
    log = _h2load_log(list(range(1000, 2000)), [503, 503, 503, 503])
    stats = parse_h2load(H2LOAD_OUTPUT, log, seconds=3.0)
    assert stats.ok == 1000  # from the log: only what it recorded as 2xx
    assert stats.error_kinds == {"HTTP 503": 4, "stream error": 2}
    assert stats.errors == 6
    assert stats.ok_per_second == pytest.approx(1000 / 3.0)
    assert stats.p50_seconds == pytest.approx(1.5e-3, rel=0.011)
    assert stats.p99_seconds == pytest.approx(1.99e-3, rel=0.011)


def test_h2load_sends_one_grpc_call_per_connection_at_a_time(tmp_path: Path) -> None:
    command = h2load_command(
        "h2load", "http://h/p.S/M", tmp_path / "b", tmp_path / "l", concurrency=16, duration=3
    )
    assert "--clients=16" in command
    assert "--max-concurrent-streams=1" in command
    assert "--header=content-type: application/grpc" in command
    assert "--duration=3000ms" in command
    assert command[-1] == "http://h/p.S/M"


def test_echo_types_and_the_gateways_descriptor_set_come_from_echo_proto(tmp_path: Path) -> None:
    echo_set = compile_echo(tmp_path, gateway_config.repo_root())
    types = echo_types(echo_set)
    sent = types.request_bytes("hello")
    assert types.response.FromString(sent).SerializeToString() == sent  # same wire shape
    assert grpc_frame(sent) == b"\x00\x00\x00\x00\x07" + sent
    merged = merged_descriptor_set(
        [gateway_config.default_descriptor_path(), echo_set], tmp_path / "gateway.binpb"
    )
    names = [file.name for file in read_descriptor_set(merged).file]
    assert len(names) == len(set(names))  # google/api/* once, though both sets carry it
    assert "echo.proto" in names
    assert "medstation/user/v1/user_service.proto" in names


def test_the_echo_gateway_is_the_gateway_template_with_echo_beside_the_user_service(
    tmp_path: Path,
) -> None:
    echo_set = compile_echo(tmp_path, gateway_config.repo_root())
    descriptor = merged_descriptor_set(
        [gateway_config.default_descriptor_path(), echo_set], tmp_path / "gateway.binpb"
    )
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_SERVICE_NAME": "user"}
    options = echo_gateway_options(
        "127.0.0.1:50051", 50999, descriptor, env, listen_port=free_port(), admin_port=free_port()
    )
    assert [u.name for u in options.upstreams] == ["user", "echo"]
    assert options.rate_limit_fill_per_second == UNREACHED_RATE_LIMIT
    assert options.service_name == "echo-gateway"
    assert options.otlp_endpoint == "http://127.0.0.1:4317"  # traced like the stack's gateway
    config = tmp_path / "envoy.yaml"
    config.write_text(gateway_config.render_gateway_config(options), encoding="utf-8")
    text = config.read_text()
    assert f'"{ECHO_SERVICE}"' in text
    assert "envoy.filters.http.jwt_authn" in text
    envoy.validate_config(config)  # Envoy itself accepts it


def _stats(ok: int, p99: float = 0.02, errors: int = 0) -> LoadStats:
    return LoadStats(ok + errors, ok, errors, 10.0, p99 / 4, p99, {"x": errors} if errors else {})


def _baseline(key: str, level: int, ok: int, p99: float = 0.02) -> BaselineResult:
    return BaselineResult(key, level, _stats(ok, p99), {"service": 1.0})


def _row(
    key: str,
    via: str,
    level: int,
    ok: int,
    p99: float = 0.01,
    limited: int = 0,
    hits: float | None = None,
) -> RunResult:
    scenario = next(s for s in SCENARIOS if s.key == key)
    stats = _stats(ok, p99, errors=limited)  # a 429 is a failed request too
    return RunResult(scenario, via, level, stats, {"service": 1.0}, limited, hits)


def test_rows_are_divided_by_the_ceiling_of_their_path_at_their_level() -> None:
    ceilings = [
        _baseline(ECHO_GATEWAY, 16, 30_000),
        _baseline(ECHO_DIRECT, 16, 70_000),
        _baseline(ECHO_GATEWAY, 1, 10_000),
    ]
    assert ratio_to_ceiling("gateway", 16, 1500.0, ceilings) == pytest.approx(0.5)
    assert ratio_to_ceiling("direct", 16, 1400.0, ceilings) == pytest.approx(0.2)
    assert ratio_to_ceiling("direct", 1, 1400.0, ceilings) is None  # no direct ceiling at 1
    assert ratio_to_ceiling("gateway", 64, 1400.0, []) is None


def _memory(idle_mb: float) -> MemoryReport:
    processes = [Watched("user", 10, True), Watched("gateway (Envoy)", 11, False)]
    return MemoryReport(
        processes,
        {10: int(idle_mb * MIB), 11: 400 * MIB},  # Envoy is not held to the service target
        {10: int((idle_mb + 3) * MIB), 11: 401 * MIB},
    )


def _jobs(workers: int, per_second: float) -> JobsResult:
    return JobsResult(workers, 100, 100, 0, 0, 100 / per_second, 1.0, 2.0, {})


def _report(
    results: list[RunResult], baselines: list[BaselineResult], levels: tuple[int, ...] = (1, 16)
) -> BenchReport:
    plan = RunPlan(3, 1, levels, None, ("gateway", "direct"), 1000)
    started = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    report = BenchReport("python -m devstack bench", started, plan, [("CPUs (nproc)", "2")], [])
    report.scenarios = list(SCENARIOS)
    report.results, report.baselines = results, baselines
    return report


def _good_run() -> BenchReport:
    report = _report(
        [
            _row("get_patient_miss", "gateway", 16, 16_000, p99=0.015, hits=0.0),
            _row("get_patient_hit", "gateway", 16, 20_000, hits=0.999),
            _row("create_note", "gateway", 16, 11_000),
            _row("get_me", "direct", 1, 5_000),
        ],
        [
            _baseline(FASTAPI, 16, 10_000, p99=0.081),
            _baseline(ECHO_GATEWAY, 16, 35_000),
            _baseline(ECHO_DIRECT, 16, 70_000),
        ],
    )
    report.jobs = [_jobs(1, 30.0), _jobs(2, 60.0)]
    report.memory = _memory(100)
    return report


_DIFFERENT_PATIENTS = "GetPatient from PostgreSQL (a different patient each request)"
_ONE_PATIENT = "GetPatient from cache (one patient, read again and again)"


def _by_name(checks: list[TargetCheck]) -> dict[str, TargetCheck]:
    """Each check under its target's words before the comparison sign."""
    return {re.split(" [≥≤]", check.target)[0]: check for check in checks}


def test_targets_are_met_when_the_runs_own_numbers_reach_them() -> None:
    checks = _by_name(evaluate(_good_run()))
    db = checks[_DIFFERENT_PATIENTS]
    assert db.verdict == MET
    assert "1.60x (needs 1.5x), p99 lower" in db.numbers  # 1 600 req/s over 1 000
    assert "GetPatient (a different patient each time) through the gateway" in db.numbers
    assert db.numbers.endswith("; cache hits 0.0%")
    one = checks[_ONE_PATIENT]
    assert one.verdict == MET  # 2 000 over 3 500: 0.57x
    assert "GetPatient (one patient) through the gateway" in one.numbers
    assert one.numbers.endswith("; cache hits 99.9%")
    assert checks["CreateNote"].verdict == MET
    assert checks["summary jobs"].verdict == MET
    assert checks["no error at any level (429s included)"].verdict == MET
    assert checks["idle RSS per service process"].verdict == MET
    assert checks["no RSS growth across 10 minutes at half capacity"].verdict == NOT_MEASURED


def test_targets_say_which_numbers_miss_them() -> None:
    report = _good_run()
    report.results[0] = _row("get_patient_miss", "gateway", 16, 16_000, p99=0.2, hits=0.0)
    report.results[2] = _row("create_note", "gateway", 16, 9_000)
    report.results.append(_row("get_me", "gateway", 64, 3_000, limited=12))
    report.jobs = [_jobs(2, 30.0)]
    report.memory = _memory(130)
    checks = _by_name(evaluate(report))
    assert checks[_DIFFERENT_PATIENTS].verdict == NOT_MET
    assert "p99 not lower" in checks[_DIFFERENT_PATIENTS].numbers
    assert checks["CreateNote"].verdict == NOT_MET
    assert "0.90x (needs 1.0x)" in checks["CreateNote"].numbers
    assert checks["summary jobs"].verdict == NOT_MET
    errors = checks["no error at any level (429s included)"]
    assert errors.verdict == NOT_MET
    assert "GetMe gateway c=64: 12 (12 of them 429s)" in errors.numbers
    memory = checks["idle RSS per service process"]
    assert memory.verdict == NOT_MET
    assert "over: user 130.0 MB" in memory.numbers


def test_a_get_patient_target_is_not_met_when_its_row_read_from_the_other_place() -> None:
    report = _good_run()  # fast enough for both targets
    report.results[0] = _row("get_patient_miss", "gateway", 16, 16_000, p99=0.015, hits=0.5)
    report.results[1] = _row("get_patient_hit", "gateway", 16, 20_000, hits=0.8)
    checks = _by_name(evaluate(report))
    db = checks[_DIFFERENT_PATIENTS]
    assert db.verdict == NOT_MET
    assert "1.60x (needs 1.5x), p99 lower" in db.numbers
    assert "cache hits 50.0%: not met, more than 5% of its reads hit the cache" in db.numbers
    one = checks[_ONE_PATIENT]
    assert one.verdict == NOT_MET
    assert "cache hits 80.0%: not met, less than 95% of its reads hit the cache" in one.numbers
    report.baselines = []  # no rate to compare: the row still says it is the wrong path
    checks = _by_name(evaluate(report))
    assert checks[_DIFFERENT_PATIENTS].verdict == checks[_ONE_PATIENT].verdict == NOT_MET


def test_get_patient_targets_hold_up_to_their_hit_ratio_bounds() -> None:
    report = _good_run()
    report.results[0] = _row("get_patient_miss", "gateway", 16, 16_000, p99=0.015, hits=0.05)
    report.results[1] = _row("get_patient_hit", "gateway", 16, 20_000, hits=0.95)
    checks = _by_name(evaluate(report))
    assert checks[_DIFFERENT_PATIENTS].verdict == MET
    assert checks[_ONE_PATIENT].verdict == MET
    report.results[0] = _row("get_patient_miss", "gateway", 16, 16_000, p99=0.015, hits=0.051)
    report.results[1] = _row("get_patient_hit", "gateway", 16, 20_000, hits=0.949)
    checks = _by_name(evaluate(report))
    assert checks[_DIFFERENT_PATIENTS].verdict == NOT_MET
    assert checks[_ONE_PATIENT].verdict == NOT_MET


def test_get_patient_targets_say_an_unknown_hit_ratio_and_judge_the_rates() -> None:
    report = _good_run()
    report.results[0] = _row("get_patient_miss", "gateway", 16, 16_000, p99=0.015)
    report.results[1] = _row("get_patient_hit", "gateway", 16, 1_000)  # 0.03x the echo
    checks = _by_name(evaluate(report))
    assert checks[_DIFFERENT_PATIENTS].verdict == MET
    assert "cache hit ratio unknown" in checks[_DIFFERENT_PATIENTS].numbers
    assert checks[_ONE_PATIENT].verdict == NOT_MET
    assert "0.03x (needs 0.5x)" in checks[_ONE_PATIENT].numbers
    assert "cache hit ratio unknown" in checks[_ONE_PATIENT].numbers


def test_targets_without_their_numbers_are_not_measured_and_use_the_nearest_level() -> None:
    assert target_level((1, 16, 64)) == 16
    assert target_level((1, 4)) == 4
    checks = evaluate(_report([_row("get_patient_hit", "gateway", 4, 100)], [], levels=(1, 4)))
    assert {check.verdict for check in checks} == {NOT_MEASURED, MET}
    one = _by_name(checks)[_ONE_PATIENT]
    assert one.verdict == NOT_MEASURED
    assert "its baseline not measured" in one.numbers
    different = _by_name(checks)[_DIFFERENT_PATIENTS]
    assert different.numbers == (
        "GetPatient (a different patient each time) and its baseline not measured in this run"
    )


def test_the_report_leads_with_targets_ceilings_and_memory_and_links_the_chart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "benchmarks.md"
    write_document(path, _good_run(), chart=tmp_path / "benchmarks.png")
    sections = dict(split_sections(path.read_text()))
    assert list(sections)[:4] == ["Latest run", "Targets", "Ceilings and reference", "Memory"]
    assert (
        "![Throughput and p99 of every row of this run](benchmarks.png)" in sections["Latest run"]
    )
    targets = sections["Targets"]
    assert "6 of 7 met" in targets
    assert "| summary jobs ≥ 50/s with 2 workers | **met** | 60.0 jobs/s" in targets
    ceilings = sections["Ceilings and reference"]
    assert "| FastAPI · REST · wrk | 16 | 1,000.0 |" in ceilings
    assert "3,500 req/s (p99 20.0 ms) as REST through the gateway, 50% of direct" in ceilings
    assert "| user | 10 | 100.0 | 103.0 | +3.0 |" in sections["Memory"]
    one = sections["Scenario: GetPatient (one patient)"]
    assert "| gateway · REST · wrk | 16 | 2,000.0 | 0.57 |" in one  # over the echo gateway


def test_the_chart_is_a_png_with_a_row_per_measured_thing(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")  # bench-only: `make bench` installs it
    report = _good_run()
    points = chart_points(report.results, report.baselines)
    assert points[0].label == "FastAPI · REST · wrk"  # baselines first
    assert "GetPatient (a different patient each time) · gateway" in {p.label for p in points}
    path = tmp_path / "chart.png"
    assert write_chart(path, points, "test run")
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_rss_is_read_from_proc_status(tmp_path: Path) -> None:
    status = "Name:\tpython\nVmPeak:\t  300000 kB\nVmRSS:\t   81920 kB\nThreads:\t4\n"
    assert parse_vm_rss(status) == 80 * MIB
    assert parse_vm_rss("Name:\tkthreadd\n") is None
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "status").write_text(status)
    assert rss_bytes(42, tmp_path) == 80 * MIB
    assert rss_bytes(43, tmp_path) is None  # gone
    assert (rss_bytes(os.getpid()) or 0) > MIB


def test_stack_processes_are_found_by_their_ports() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        found = watched_processes({"user": f"127.0.0.1:{port}"}, gateway_port=port)
    assert found == [
        Watched("user", os.getpid(), True),
        Watched("gateway (Envoy)", os.getpid(), False),
    ]
    assert watched_processes({"user": f"127.0.0.1:{free_port()}"}, None) == []


def test_the_soak_paces_its_connections_toward_the_target_rate() -> None:
    assert first_delay_ms(500.0, connections=16) == 32  # 16 connections, one request each 32 ms
    # 400 req/s achieved with a 32 ms pause: each request took 8 ms; 500 req/s needs 24 ms.
    assert next_delay_ms(32, achieved=400.0, target=500.0, connections=16) == 24
    assert next_delay_ms(0, achieved=300.0, target=500.0, connections=16) == 0  # flat out
    assert next_delay_ms(10, achieved=0.0, target=500.0, connections=16) == 10


def test_the_soak_counts_growth_from_its_first_chunk() -> None:
    processes = [Watched("user", 1, True), Watched("gateway (Envoy)", 2, False)]
    soak = SoakResult(600, 1000.0, "probe", processes, {1: 80 * MIB, 2: 50 * MIB})
    for user_mb, envoy_mb in ((95, 60), (97, 90), (98, 95)):
        rss: dict[int, int | None] = {1: user_mb * MIB, 2: envoy_mb * MIB}
        soak.chunks.append(SoakChunk(10, _stats(15_000), rss))
    assert soak.target_rate == 500.0
    assert soak.growth(1) == 3 * MIB  # warming up (80 -> 95) does not count
    assert soak.peak(2) == 95 * MIB
    assert soak.grown() == []  # Envoy grew, but the target is about service processes
    soak.chunks[-1].rss[1] = 120 * MIB
    assert soak.grown() == [processes[0]]


def test_the_gateways_bucket_is_read_from_its_config_dump() -> None:
    dump = {
        "configs": [
            {"other": {"stat_prefix": "x", "token_bucket": {"max_tokens": 1}}},
            {
                "typed_config": {
                    "stat_prefix": "gateway_rate_limit",
                    "token_bucket": {
                        "max_tokens": 500,
                        "tokens_per_fill": 250,
                        "fill_interval": "1s",
                    },
                }
            },
        ]
    }
    limit = find_rate_limit(dump)
    assert limit == RateLimit(500, 250.0)
    assert "expect 429s" in rate_limit_notes(limit)[0]
    assert "expect 429s" not in rate_limit_notes(RateLimit(10**6, 10**6))[0]
    assert rate_limit_notes(None) == []


def test_a_stack_the_bench_starts_never_rate_limits_it() -> None:
    env = own_stack.stack_environment({"PATH": "/bin", "MEDSTATION_RATE_LIMIT_MESSAGES": "30"})
    assert env["PATH"] == "/bin"
    assert env["MEDSTATION_RATE_LIMIT_MESSAGES"] == "1000000"
    assert env["MEDSTATION_GATEWAY_RATE_LIMIT_PER_SECOND"] == "1000000"
    assert env["MEDSTATION_GATEWAY_RATE_LIMIT_BURST"] == "1000000"


def test_a_stack_the_bench_starts_traces_at_the_production_sampling() -> None:
    env = own_stack.stack_environment({"PATH": "/bin"})
    assert (env["OTEL_TRACES_SAMPLER"], env["OTEL_TRACES_SAMPLER_ARG"]) == (
        "parentbased_traceidratio",
        "0.1",
    )
    chosen = own_stack.stack_environment({"OTEL_TRACES_SAMPLER": "always_on"})
    assert chosen["OTEL_TRACES_SAMPLER"] == "always_on"
    assert "OTEL_TRACES_SAMPLER_ARG" not in chosen


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_bench_starts_a_stack_only_on_free_default_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        assert not own_stack.nothing_listens([free_port(), taken])
    assert own_stack.nothing_listens([free_port()])
    elsewhere = _args("--gateway", f"http://127.0.0.1:{free_port()}")
    assert not cli._starts_own_stack(elsewhere, cli._endpoints(elsewhere))  # not make run's
    refused = _args("--no-start-stack")
    assert not cli._starts_own_stack(refused, cli._endpoints(refused))
    asked: list[list[int]] = []

    def nothing_listens(ports: list[int]) -> bool:
        asked.append(ports)
        return True

    monkeypatch.setattr(own_stack, "nothing_listens", nothing_listens)
    defaults = _args()
    assert cli._starts_own_stack(defaults, cli._endpoints(defaults))
    assert asked == [[8080, 50051]]  # make run's gateway and user service


def test_patient_cache_counters_are_read_from_the_patient_service_the_bench_measures() -> None:
    def metrics_url(*argv: str) -> str | None:
        return cli._endpoints(_args(*argv)).patient_metrics_url

    assert metrics_url() == "http://127.0.0.1:9102/metrics"  # make run's patient-record
    assert metrics_url("--patient-metrics", "") is None
    given = "http://127.0.0.1:1/metrics"
    assert metrics_url("--patient-metrics", given) == given
    # Another stack's patient service: make run's metrics port would count other reads.
    assert metrics_url("--patient-addr", "127.0.0.1:1") is None
    assert metrics_url("--patient-addr", "127.0.0.1:1", "--patient-metrics", given) == given


def test_the_default_run_is_short_and_the_soak_is_asked_for() -> None:
    plan = cli._plan(_args())
    assert (plan.warmup, plan.duration, plan.concurrency) == (1.0, 3.0, (1, 16, 64))
    assert plan.soak_seconds is None
    assert cli._plan(_args("--soak", "600")).soak_seconds == 600


def test_fuzzy_search_queries_are_misspelled_surnames_sent_url_encoded() -> None:
    queries = fuzzy_queries(1000)
    assert len(queries) == 16
    assert queries[0] == "Sillva"  # the first bench patient is Richard Silva
    assert fuzzy_queries(3) == queries[:3]
    search = next(s for s in SCENARIOS if s.key == "search_patients")
    cycle = search.http_cycle(BenchData((), (), search_queries=("O'Brrien",)))
    assert cycle == [HttpRequest("GET", "/v1/patients?query=O%27Brrien&page_size=20")]


def test_wrk_scripts_can_go_without_a_token_and_pace_themselves() -> None:
    script = lua_script([HttpRequest("GET", "/patients/1")], None, threads=1, delay_ms=24)
    assert "Authorization" not in script
    assert "function delay()\n  return 24\nend" in script
    assert "function delay()" not in lua_script([HttpRequest("GET", "/")], "t", threads=1)


def test_the_cache_target_reads_its_row_against_the_echo_measured_beside_it() -> None:
    # The baselines phase caught the machine fast (35 000 requests in the window), the row
    # and the echo around it a slower minute: the target divides by the echo of that
    # minute (both measurements' requests over their seconds), and shows the other.
    report = _good_run()
    report.results[1] = _row("get_patient_hit", "gateway", 16, 15_000, hits=0.999)
    before, after = (
        _baseline(ECHO_GATEWAY_BESIDE, 16, 29_000),
        _baseline(ECHO_GATEWAY_BESIDE, 16, 31_000),
    )
    report.baselines += [before, after]
    one = _by_name(evaluate(report))[_ONE_PATIENT]
    assert one.verdict == MET  # 1 500 over 3 000: 0.50x, where 1 500 over 3 500 is 0.43x
    assert "right before and after it 3,000 req/s (2,900 before, 3,100 after): 0.50x" in one.numbers
    assert "against the baselines phase's echo (3,500 req/s, p99 20.0 ms) 0.43x" in one.numbers
    assert one.numbers.endswith("; cache hits 99.9%")

    report.baselines[-1] = _baseline(ECHO_GATEWAY_BESIDE, 16, 41_000)  # 0.43x of 3 500
    assert _by_name(evaluate(report))[_ONE_PATIENT].verdict == NOT_MET


def test_without_both_echoes_beside_it_the_cache_target_uses_the_baselines_phase() -> None:
    report = _good_run()
    report.results[1] = _row("get_patient_hit", "gateway", 16, 15_000, hits=0.999)
    report.baselines.append(_baseline(ECHO_GATEWAY_BESIDE, 16, 29_000))  # the run stopped
    one = _by_name(evaluate(report))[_ONE_PATIENT]
    assert one.verdict == NOT_MET
    assert "echo · gateway · REST · wrk 3,500 req/s, p99 20.0 ms: 0.43x" in one.numbers
