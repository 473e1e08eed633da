"""`python -m devstack bench` (what `make bench` runs): arguments in, table and report out.

Every address is an argument (defaults: the `make run` ports), so a test can point the
same command at a stack it started on free ports. `--smoke` is the shortest run that
still exercises every part: 1 s per level, concurrency 1 and 4, a handful of patients.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from devstack import gateway_config
from devstack.api_session import SignInError
from devstack.bench.dataset import BenchDataError
from devstack.bench.report import results_json, text_table, write_document
from devstack.bench.runner import VIAS, Endpoints, RunPlan, run_bench
from devstack.bench.scenarios import scenario_keys
from devstack.bench.wrk import WrkError
from devstack.postgres import admin_url_from_env
from devstack.redis import redis_url_from_env
from devstack.services import present_services, service_by_key
from devstack.stack_probe import StackNotRunningError

DEFAULT_DURATION = 10.0
DEFAULT_WARMUP = 2.0
DEFAULT_CONCURRENCY = (1, 16, 64)
DEFAULT_PATIENTS = 1000
SMOKE_DURATION = 1.0
SMOKE_WARMUP = 0.5
SMOKE_CONCURRENCY = (1, 4)
SMOKE_PATIENTS = 20
PATIENT_SERVICE = "patient-record"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"shortest full run: {SMOKE_DURATION:g} s per level, concurrency "
        f"{_join(SMOKE_CONCURRENCY)}, {SMOKE_PATIENTS} patients (explicit options win)",
    )
    parser.add_argument("--duration", type=_positive_float, help="seconds measured per level")
    parser.add_argument("--warmup", type=_non_negative_float, help="seconds of warm-up per level")
    parser.add_argument("--concurrency", type=_levels, help="levels, e.g. 1,16,64")
    parser.add_argument("--patients", type=_positive_int, help="bench patients to seed/use")
    parser.add_argument(
        "--scenarios", type=_names(scenario_keys()), help=f"subset of {','.join(scenario_keys())}"
    )
    parser.add_argument("--via", type=_names(list(VIAS)), default=list(VIAS), help="gateway,direct")
    parser.add_argument("--gateway", default="http://127.0.0.1:8080", help="gateway base URL")
    parser.add_argument("--envoy-admin", default="http://127.0.0.1:9901", help="Envoy admin URL")
    parser.add_argument("--user-addr", default=_local_address("user"))
    parser.add_argument(
        "--patient-addr",
        default=_local_address(PATIENT_SERVICE),
        help="'' to leave the patient scenarios out",
    )
    parser.add_argument(
        "--patient-metrics",
        default=_metrics_url(PATIENT_SERVICE),
        help="its Prometheus URL, for the cache hit ratio ('' to skip)",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="markdown report (default docs/benchmarks.md)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Benchmark, print the table, write the report; 1 with a message if the stack is not up."""
    plan = _plan(args)
    endpoints = _endpoints(args)
    output: Path = args.output or gateway_config.repo_root() / "docs" / "benchmarks.md"
    command = shlex.join(["python", "-m", "devstack", "bench", *argv])
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
            report = asyncio.run(run_bench(endpoints, plan, command=command, workdir=Path(workdir)))
    except (StackNotRunningError, SignInError, BenchDataError, WrkError) as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    print(text_table(report.results))
    for reason in report.skipped:
        print(f"skipped: {reason}")
    write_document(output, report)
    print(f"wrote {output}")
    if args.json is not None:
        args.json.write_text(results_json(report), encoding="utf-8")
    return 0


def _plan(args: argparse.Namespace) -> RunPlan:
    smoke: bool = args.smoke
    return RunPlan(
        duration=_first(args.duration, SMOKE_DURATION if smoke else DEFAULT_DURATION),
        warmup=_first(args.warmup, SMOKE_WARMUP if smoke else DEFAULT_WARMUP),
        concurrency=args.concurrency or (SMOKE_CONCURRENCY if smoke else DEFAULT_CONCURRENCY),
        scenarios=args.scenarios,
        vias=tuple(args.via),
        patients=args.patients or (SMOKE_PATIENTS if smoke else DEFAULT_PATIENTS),
    )


def _endpoints(args: argparse.Namespace) -> Endpoints:
    patient_addr: str = args.patient_addr
    in_checkout = any(
        s.key == PATIENT_SERVICE for s in present_services(gateway_config.repo_root())
    )
    return Endpoints(
        gateway_url=args.gateway.rstrip("/"),
        envoy_admin_url=args.envoy_admin or None,
        user_addr=args.user_addr,
        patient_addr=patient_addr or None,
        # Present in the checkout means `make run` starts it: not serving is then an error.
        patient_required=bool(patient_addr) and in_checkout,
        patient_metrics_url=args.patient_metrics or None,
        postgres_admin_url=admin_url_from_env(),
        redis_url=redis_url_from_env(),
    )


def _first(value: float | None, default: float) -> float:
    return default if value is None else value


def _local_address(key: str) -> str:
    return f"127.0.0.1:{service_by_key(key).grpc_port}"


def _metrics_url(key: str) -> str:
    return f"http://127.0.0.1:{service_by_key(key).metrics_port}/metrics"


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
