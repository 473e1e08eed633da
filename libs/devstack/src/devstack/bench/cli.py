"""`python -m devstack bench` (what `make bench` runs): arguments in, tables, report and
chart out, and how long it all took.

Every address is an argument (defaults: the `make run` ports), so a test can point the
same command at a stack it started on free ports. When nothing listens on the default
gateway and user ports, the bench starts a stack of its own there (bench.own_stack) and
stops it at the end. `--smoke` is the shortest run that still exercises every part: 1 s
per level, concurrency 1 and 4, a handful of patients, chats and summary jobs.

The default run is sized for `make bench` to finish within 10 minutes on a fresh 2-core
machine, a stack to start and its bench patients to seed included: 1 s of warm-up and
3 s measured per level, levels 1, 16 and 64, over 10 scenarios on two paths, the
baselines, streams and 100 summary jobs per row (about 75 measured runs; the report's
"time taken" line says where the time went).
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from devstack import gateway_config
from devstack.api_session import SignInError
from devstack.bench import own_stack
from devstack.bench.chart import chart_points, write_chart
from devstack.bench.chat_data import LIMIT_VARIABLE, RAISED_LIMIT
from devstack.bench.cpu_groups import address_port, port_of
from devstack.bench.dataset import BenchDataError
from devstack.bench.plan import Endpoints, RunPlan
from devstack.bench.report import results_json, text_table, write_document
from devstack.bench.results import BenchReport
from devstack.bench.runner import run_bench
from devstack.bench.scenarios import CHAT_SERVICE, PATIENT_SERVICE, SUMMARY_SERVICE, scenario_keys
from devstack.bench.targets import evaluate
from devstack.bench.vias import VIAS
from devstack.bench.wrk import WrkError
from devstack.postgres import admin_url_from_env
from devstack.redis import redis_url_from_env
from devstack.services import present_services, service_by_key
from devstack.stack_probe import StackNotRunningError

DEFAULT_DURATION = 3.0
DEFAULT_WARMUP = 1.0
DEFAULT_CONCURRENCY = (1, 16, 64)
DEFAULT_PATIENTS = 1000
SMOKE_DURATION = 1.0
SMOKE_WARMUP = 0.5
SMOKE_CONCURRENCY = (1, 4)
SMOKE_PATIENTS = 20
DEFAULT_CHATS = 16
SMOKE_CHATS = 4
DEFAULT_JOBS = 100
SMOKE_JOBS = 6
DEFAULT_WORKERS = (1, 2)
SUMMARY_WORKER = "summary-worker"
DEFAULT_GATEWAY = "http://127.0.0.1:8080"
OWN_STACK_LOG = Path(".run") / "bench-stack.log"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"shortest full run: {SMOKE_DURATION:g} s per level, concurrency "
        f"{_join(SMOKE_CONCURRENCY)}, {SMOKE_PATIENTS} patients, {SMOKE_CHATS} chats, "
        f"{SMOKE_JOBS} summary jobs (explicit options win)",
    )
    parser.add_argument("--duration", type=_positive_float, help="seconds measured per level")
    parser.add_argument("--warmup", type=_non_negative_float, help="seconds of warm-up per level")
    parser.add_argument("--concurrency", type=_levels, help="levels, e.g. 1,16,64")
    parser.add_argument("--patients", type=_positive_int, help="bench patients to seed/use")
    parser.add_argument(
        "--chats", type=_positive_int, help=f"bench chats to cycle through ({DEFAULT_CHATS})"
    )
    parser.add_argument(
        "--jobs", type=_positive_int, help=f"summary jobs per workers row ({DEFAULT_JOBS})"
    )
    parser.add_argument(
        "--workers",
        type=_levels,
        default=DEFAULT_WORKERS,
        help="summary workers per jobs row, e.g. 1,2: the stack's own worker plus ones the "
        "bench starts like it (from its /proc environment) and stops after",
    )
    parser.add_argument(
        "--scenarios", type=_names(scenario_keys()), help=f"subset of {','.join(scenario_keys())}"
    )
    parser.add_argument("--via", type=_names(list(VIAS)), default=list(VIAS), help="gateway,direct")
    parser.add_argument(
        "--soak",
        type=_positive_float,
        metavar="SECONDS",
        help="after the run, GetPatient through the gateway at half the measured capacity "
        "for this long, RSS sampled (600 for issue 9's target; not part of the default run)",
    )
    parser.add_argument(
        "--no-start-stack",
        action="store_true",
        help="fail when no stack answers instead of starting one (it is only ever started on "
        "the default ports)",
    )
    parser.add_argument("--gateway", default=DEFAULT_GATEWAY, help="gateway base URL")
    parser.add_argument("--envoy-admin", default="http://127.0.0.1:9901", help="Envoy admin URL")
    parser.add_argument("--user-addr", default=_local_address("user"))
    parser.add_argument(
        "--patient-addr",
        default=_local_address(PATIENT_SERVICE),
        help="'' to leave the patient scenarios out",
    )
    parser.add_argument(
        "--summary-addr",
        default=_local_address(SUMMARY_SERVICE),
        help="'' to leave the summary scenarios out",
    )
    parser.add_argument(
        "--summary-worker-addr",
        default=_local_worker_address(SUMMARY_SERVICE, SUMMARY_WORKER),
        help="the running summary worker's gRPC health address (for the jobs measurement)",
    )
    parser.add_argument(
        "--chat-addr",
        default=_local_address(CHAT_SERVICE),
        help=f"'' to leave the chat scenarios out; sending needs the stack started with "
        f"{LIMIT_VARIABLE}={RAISED_LIMIT} (the per-user send limit)",
    )
    parser.add_argument(
        "--patient-metrics",
        metavar="URL",
        help="patient-record's Prometheus URL, for the patient cache's hit ratio ('' to "
        f"skip; default {_metrics_url(PATIENT_SERVICE)} when --patient-addr is make run's "
        "too, else none: that port would count another stack's reads)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="markdown report (default docs/benchmarks.md); the chart goes beside it (.png)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Benchmark, print the tables, write report and chart; 1 with a message on failure."""
    started = time.monotonic()
    plan = _plan(args)
    endpoints = _endpoints(args)
    output: Path = args.output or gateway_config.repo_root() / "docs" / "benchmarks.md"
    command = shlex.join(["python", "-m", "devstack", "bench", *argv])
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
            report = asyncio.run(_bench(args, endpoints, plan, command, Path(workdir)))
    except (
        StackNotRunningError,
        SignInError,
        BenchDataError,
        WrkError,
        own_stack.StackStartError,
    ) as error:
        print(f"bench: {error}", file=sys.stderr)
        print(f"bench: stopped after {_took(started)}", file=sys.stderr)
        return 1
    report.seconds = time.monotonic() - started
    chart: Path | None = output.with_suffix(".png")
    levels = ", ".join(str(level) for level in plan.concurrency)
    title = (
        f"MedStation bench, {report.started_at:%Y-%m-%d %H:%M} UTC: {plan.duration:g} s "
        f"per level after {plan.warmup:g} s of warm-up, concurrency {levels}"
    )
    if chart is not None and not write_chart(
        chart, chart_points(report.results, report.baselines), title
    ):
        report.skipped.append(
            "chart: matplotlib is not installed (`make bench` installs requirements-bench.txt)"
        )
        chart = None
    print(text_table(report, evaluate(report)))
    for reason in report.skipped:
        print(f"skipped: {reason}")
    write_document(output, report, chart)
    print(f"wrote {output}" + (f" and {chart}" if chart else ""))
    if args.json is not None:
        args.json.write_text(results_json(report), encoding="utf-8")
    print(f"bench: finished in {_took(started)}")
    return 0


async def _bench(
    args: argparse.Namespace, endpoints: Endpoints, plan: RunPlan, command: str, workdir: Path
) -> BenchReport:
    """On the running stack, or on one the bench starts for itself when none answers."""
    if not _starts_own_stack(args, endpoints):
        note = f"stack: the one running at {endpoints.gateway_url}"
        return await run_bench(endpoints, plan, command=command, workdir=workdir, notes=[note])
    root = gateway_config.repo_root()
    print(
        f"bench: no stack answers at {endpoints.gateway_url}; starting one "
        f"(`python -m devstack run`, its output in {OWN_STACK_LOG})",
        flush=True,
    )
    worker = endpoints.summary_worker_addr if endpoints.summary_required else None
    started = time.monotonic()
    async with own_stack.own_stack(root, endpoints.gateway_url, worker, root / OWN_STACK_LOG):
        print(f"bench: the stack is up after {_took(started)}", flush=True)
        return await run_bench(
            endpoints, plan, command=command, workdir=workdir, notes=[own_stack.describe()]
        )


def _starts_own_stack(args: argparse.Namespace, endpoints: Endpoints) -> bool:
    """Only on `make run`'s own ports, and only when neither front door is taken."""
    if args.no_start_stack:
        return False
    defaults = endpoints.gateway_url == DEFAULT_GATEWAY and endpoints.user_addr == (
        _local_address("user")
    )
    ports = [port_of(endpoints.gateway_url), address_port(endpoints.user_addr)]
    return defaults and own_stack.nothing_listens(ports)


def _took(started: float) -> str:
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def _plan(args: argparse.Namespace) -> RunPlan:
    smoke: bool = args.smoke
    return RunPlan(
        duration=_first(args.duration, SMOKE_DURATION if smoke else DEFAULT_DURATION),
        warmup=_first(args.warmup, SMOKE_WARMUP if smoke else DEFAULT_WARMUP),
        concurrency=args.concurrency or (SMOKE_CONCURRENCY if smoke else DEFAULT_CONCURRENCY),
        scenarios=args.scenarios,
        vias=tuple(args.via),
        patients=args.patients or (SMOKE_PATIENTS if smoke else DEFAULT_PATIENTS),
        chats=args.chats or (SMOKE_CHATS if smoke else DEFAULT_CHATS),
        jobs=args.jobs or (SMOKE_JOBS if smoke else DEFAULT_JOBS),
        workers=tuple(args.workers),
        soak_seconds=args.soak,
    )


def _endpoints(args: argparse.Namespace) -> Endpoints:
    in_checkout = {s.key for s in present_services(gateway_config.repo_root())}
    patient_addr: str = args.patient_addr
    summary_addr: str = args.summary_addr
    chat_addr: str = args.chat_addr
    # Present in the checkout means `make run` starts it: not serving is then an error.
    return Endpoints(
        gateway_url=args.gateway.rstrip("/"),
        envoy_admin_url=args.envoy_admin or None,
        user_addr=args.user_addr,
        patient_addr=patient_addr or None,
        patient_required=bool(patient_addr) and PATIENT_SERVICE in in_checkout,
        postgres_admin_url=admin_url_from_env(),
        redis_url=redis_url_from_env(),
        summary_addr=summary_addr or None,
        summary_required=bool(summary_addr) and SUMMARY_SERVICE in in_checkout,
        summary_worker_addr=args.summary_worker_addr or None,
        chat_addr=chat_addr or None,
        chat_required=bool(chat_addr) and CHAT_SERVICE in in_checkout,
        patient_metrics_url=_patient_metrics_url(args.patient_metrics, patient_addr),
    )


def _patient_metrics_url(given: str | None, patient_addr: str) -> str | None:
    """The URL given ('' for none), else make run's when the patient service is make run's."""
    if given is not None:
        return given or None
    if patient_addr != _local_address(PATIENT_SERVICE):
        return None
    return _metrics_url(PATIENT_SERVICE)


def _first(value: float | None, default: float) -> float:
    return default if value is None else value


def _local_address(key: str) -> str:
    return f"127.0.0.1:{service_by_key(key).grpc_port}"


def _metrics_url(key: str) -> str:
    return f"http://127.0.0.1:{service_by_key(key).metrics_port}/metrics"


def _local_worker_address(service: str, worker: str) -> str:
    entry = next(w for w in service_by_key(service).workers if w.key == worker)
    return f"127.0.0.1:{entry.grpc_port}"


def _join(levels: Sequence[int]) -> str:
    return " and ".join(str(level) for level in levels)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _levels(text: str) -> tuple[int, ...]:
    levels = tuple(_positive_int(part) for part in text.split(",") if part.strip())
    if not levels:
        raise argparse.ArgumentTypeError("name at least one concurrency level")
    return levels


def _names(known: list[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [part.strip() for part in text.split(",") if part.strip()]
        if unknown := sorted(set(names) - set(known)):
            raise argparse.ArgumentTypeError(f"unknown {unknown}; known: {','.join(known)}")
        if not names:
            raise argparse.ArgumentTypeError("name at least one")
        return names

    return parse
