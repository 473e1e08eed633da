"""Fuzz the REST API through a live gateway with schemathesis, from the served /openapi.json.

Creates accounts and records to aim at (fuzz_targets), then runs `schemathesis run` once per
account (a clinician, and an admin when its credentials are given) with the hooks of
fuzz_hooks, and counts every request per operation from the run's NDJSON report
(fuzz_report). A server error (a 5xx other than 503/504) fails the run.

    python -m devstack.fuzz --gateway http://127.0.0.1:8080 --examples 1000 \\
        --admin-email admin@medstation.local --admin-password ... --report docs/fuzzing.md

tests/test_fuzz.py runs the same against the end-to-end stack (`make fuzz`, or briefly in
`make test`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from devstack import fuzz_markdown, fuzz_report, fuzz_targets
from devstack.fuzz_report import OperationStats, RunResult
from devstack.fuzz_targets import Identity

HOOKS_MODULE = "devstack.fuzz_hooks"
# What the hooks read (they run inside the schemathesis process).
GATEWAY_VARIABLE = "MEDSTATION_FUZZ_GATEWAY"
EMAIL_VARIABLE = "MEDSTATION_FUZZ_EMAIL"
PASSWORD_VARIABLE = "MEDSTATION_FUZZ_PASSWORD"  # noqa: S105 - a variable's name, not a secret
TARGETS_VARIABLE = "MEDSTATION_FUZZ_TARGETS"


@dataclass(frozen=True)
class FuzzSettings:
    gateway_url: str
    examples: int = 25  # per operation and phase, as schemathesis' --max-examples
    seed: int | None = None
    # One worker: with two, schemathesis' threads call ast.parse concurrently (hypothesis
    # describing its filters), and CPython 3.11.7 then once raised "SystemError: AST
    # constructor recursion depth mismatch" (CPython gh-106905, seen in threaded programs):
    # a fuzzer crash that failed CI. The server sees the same requests, in one stream.
    workers: int = 1
    # Under the gateway's bucket (250/s), so the run measures the API, not the rate limit.
    rate_limit: str = "200/s"
    phases: str = "coverage,fuzzing,stateful"
    timeout_seconds: float = 3600


@dataclass
class FuzzRun:
    """One schemathesis run as one account."""

    identity: str
    exit_code: int
    seconds: float
    result: RunResult
    log: Path

    @property
    def stats(self) -> dict[str, OperationStats]:
        return self.result.stats

    @property
    def cases(self) -> int:
        return sum(entry.cases for entry in self.stats.values())

    @property
    def server_errors(self) -> int:
        return sum(entry.server_error_count for entry in self.stats.values())

    def failures(self) -> list[str]:
        """Why this run does not pass: server errors, schemathesis errors, no requests."""
        found = [f"{self.server_errors} server errors"] if self.server_errors else []
        found += self.result.errors
        return found if self.cases else [*found, "no request was sent"]


def schemathesis_binary() -> Path:
    """The CLI installed beside this interpreter, found without PATH."""
    return Path(sysconfig.get_path("scripts")) / "schemathesis"


def served_document(gateway_url: str) -> dict[str, Any]:
    """The OpenAPI document the gateway serves, which the run fuzzes."""
    response = httpx.get(f"{gateway_url}/openapi.json", timeout=10).raise_for_status()
    document: dict[str, Any] = response.json()
    return document


def fuzz(settings: FuzzSettings, admin: Identity | None, work_dir: Path) -> list[FuzzRun]:
    """Prepare targets, then fuzz as the clinician (and the admin); one FuzzRun each."""
    work_dir.mkdir(parents=True, exist_ok=True)
    documented = set(fuzz_report.documented_operations(served_document(settings.gateway_url)))
    with httpx.Client(base_url=settings.gateway_url, timeout=30) as client:
        targets = fuzz_targets.prepare(client, admin)
    targets_file = work_dir / "targets.json"
    targets_file.write_text(json.dumps(targets.path_values, indent=2), encoding="utf-8")
    runs = [run_schemathesis(settings, targets.clinician, targets_file, work_dir, documented)]
    if admin is not None:  # last: it may disable the accounts and models the others use
        with httpx.Client(base_url=settings.gateway_url, timeout=30) as client:
            catalogue = fuzz_targets.model_catalogue(client, admin)
            try:
                runs.append(run_schemathesis(settings, admin, targets_file, work_dir, documented))
            finally:
                fuzz_targets.restore_models(client, admin, catalogue)
    return runs


def run_schemathesis(
    settings: FuzzSettings,
    identity: Identity,
    targets_file: Path,
    work_dir: Path,
    documented: set[str],
) -> FuzzRun:
    events = work_dir / f"{identity.name}.ndjson"
    log = work_dir / f"{identity.name}.log"
    command = [
        str(schemathesis_binary()),
        "run",
        f"{settings.gateway_url}/openapi.json",
        "--url",
        settings.gateway_url,
        "--checks",
        "not_a_server_error",
        "--continue-on-failure",
        "--max-examples",
        str(settings.examples),
        "--phases",
        settings.phases,
        "--workers",
        str(settings.workers),
        "--rate-limit",
        settings.rate_limit,
        "--request-timeout",
        "30",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(events),
        "--warnings",
        "off",
        *(["--seed", str(settings.seed)] if settings.seed is not None else []),
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": HOOKS_MODULE,
        GATEWAY_VARIABLE: settings.gateway_url,
        EMAIL_VARIABLE: identity.email,
        PASSWORD_VARIABLE: identity.password,
        TARGETS_VARIABLE: str(targets_file),
    }
    started = time.monotonic()
    with log.open("wb") as output:
        result = subprocess.run(
            command,
            env=env,
            cwd=work_dir,  # where hypothesis and schemathesis keep their caches
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=settings.timeout_seconds,
            check=False,
        )
    seconds = time.monotonic() - started
    if events.exists():
        outcome = fuzz_report.read_run(fuzz_report.read_events(events), documented)
    else:
        outcome = RunResult({}, [f"schemathesis wrote no report (exit {result.returncode})"])
    return FuzzRun(identity.name, result.returncode, seconds, outcome, log)


def write_report(runs: list[FuzzRun], settings: FuzzSettings, report: Path | None) -> str:
    """The results section; also written into `report` (keeping its other text) if given."""
    classes = fuzz_report.documented_operations(served_document(settings.gateway_url))
    section = fuzz_markdown.render(runs, settings, classes)
    if report is not None:
        existing = report.read_text(encoding="utf-8") if report.exists() else ""
        report.write_text(fuzz_markdown.replace_section(existing, section), encoding="utf-8")
    return section


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.fuzz",
        description="Fuzz the REST API of a running gateway with schemathesis.",
    )
    parser.add_argument("--gateway", default="http://127.0.0.1:8080", help="the gateway URL")
    parser.add_argument("--examples", type=int, default=100, help="cases per operation")
    parser.add_argument("--seed", type=int, help="schemathesis seed, to repeat a run")
    parser.add_argument("--admin-email", default=os.environ.get("MEDSTATION_ADMIN_EMAIL"))
    parser.add_argument("--admin-password", default=os.environ.get("MEDSTATION_ADMIN_PASSWORD"))
    parser.add_argument("--work-dir", type=Path, default=Path(".run") / "fuzz")
    parser.add_argument("--report", type=Path, help="write the Markdown report here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    admin = (
        Identity("admin", args.admin_email, args.admin_password)
        if args.admin_email and args.admin_password
        else None
    )
    settings = FuzzSettings(args.gateway.rstrip("/"), examples=args.examples, seed=args.seed)
    runs = fuzz(settings, admin, args.work_dir)
    section = write_report(runs, settings, args.report)
    print(section)
    failed = [run for run in runs if run.failures()]
    for run in failed:
        print(f"{run.identity}: {'; '.join(run.failures())}; see {run.log}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
