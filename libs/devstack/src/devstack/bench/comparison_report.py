"""The report's sections about what MedStation is read against: the baselines' table
(echo ceilings, FastAPI reference) and issue 9's targets computed from the run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from devstack.bench import cpu_groups
from devstack.bench.baselines import (
    BASELINES,
    ECHO_DIRECT,
    ECHO_DIRECT_GRPC_AIO,
    ECHO_GATEWAY,
    FASTAPI,
    BaselineResult,
    find,
)
from devstack.bench.custom_report import CPU_LABELS
from devstack.bench.table import aligned, markdown, ms, number
from devstack.bench.targets import MET, NOT_MET, TargetCheck, target_level

CEILINGS_HEADING = "Ceilings and reference"
TARGETS_HEADING = "Targets"
_CPU_GROUPS = (
    cpu_groups.GATEWAY,
    cpu_groups.SERVICE,
    cpu_groups.POSTGRES,
    cpu_groups.LOAD_GENERATOR,
)
_HEADERS = (
    "path", "conc", "req/s", "p50 ms", "p99 ms", "errors",
    *(f"CPU µs/req {CPU_LABELS[group]}" for group in _CPU_GROUPS),
)  # fmt: skip
_VERDICTS = {MET: "**met**", NOT_MET: "**not met**"}


def baseline_rows(results: Sequence[BaselineResult]) -> list[list[str]]:
    return [
        [
            r.baseline.path,
            str(r.concurrency),
            number(r.stats.ok_per_second, 1),
            number(ms(r.stats.p50_seconds), 2),
            number(ms(r.stats.p99_seconds), 2),
            _errors(r),
            *(number(r.cpu_us_per_request(group), 0) for group in _CPU_GROUPS),
        ]
        for r in results
    ]


def ceilings_section(results: Sequence[BaselineResult], measured: str) -> str:
    keys = [key for key in BASELINES if any(r.key == key for r in results)]
    described = "\n".join(f"- **{BASELINES[key].path}**: {BASELINES[key].summary}." for key in keys)
    return "\n\n".join(
        (
            "Measured in the same run, on the same cores, before the scenarios (the echo "
            "rows marked beside: around the row named below); every scenario row's "
            "**x ceiling** column is its req/s over the ceiling of its path at the same "
            f"concurrency, as measured before the scenarios. Measured {measured}.",
            described,
            markdown(_HEADERS, baseline_rows(results)),
            "Reading: " + ceilings_reading(results),
        )
    )


def ceilings_reading(results: Sequence[BaselineResult]) -> str:
    """The ceilings at the targets' level, and what the gateway and the generator cost."""
    levels = sorted({r.concurrency for r in results})
    if not levels:
        return "nothing measured."
    level = target_level(levels)
    direct, aio = find(results, ECHO_DIRECT, level), find(results, ECHO_DIRECT_GRPC_AIO, level)
    gateway, reference = find(results, ECHO_GATEWAY, level), find(results, FASTAPI, level)
    sentences = []
    if direct is not None:
        sentences.append(f"at concurrency {level} the echo serves {_rate(direct)} directly")
    if gateway is not None:
        share = _share(gateway, direct)
        sentences.append(f"{_rate(gateway)} as REST through the gateway{share}")
    if aio is not None:
        sentences.append(
            f"the bench's grpc.aio generator drives it to {_rate(aio)}, a bound on every "
            "direct scenario row"
        )
    if reference is not None:
        sentences.append(f"the FastAPI reference serves {_rate(reference)}")
    errors = sum(r.stats.errors for r in results)
    return "; ".join(sentences) + f". Errors: {errors}."


def targets_section(checks: Sequence[TargetCheck], levels: Sequence[int]) -> str:
    level = target_level(levels) if levels else None
    where = (
        f"at concurrency {level} through the gateway"
        if level is not None
        else "through the gateway"
    )
    rows = [
        f"| {check.target} | {_VERDICTS.get(check.verdict, check.verdict)} | {check.numbers} |"
        for check in checks
    ]
    met = sum(check.verdict == MET for check in checks)
    # Left-aligned: these are sentences, not numbers.
    table = "\n".join(["| target | result | from this run's numbers |", "|---|---|---|", *rows])
    return "\n\n".join(
        (
            "Issue 9's targets, each computed from this run's own numbers (ratios "
            f"{where}, every feature on, as the stack runs). {met} of {len(checks)} met.",
            table,
        )
    )


def terminal_tables(results: Sequence[BaselineResult], checks: Sequence[TargetCheck]) -> str:
    parts = []
    if results:
        parts.append(aligned(_HEADERS, baseline_rows(results)))
    if checks:
        width = max(len(check.target) for check in checks)
        parts.append(
            "\n".join(
                f"{check.target:<{width}}  {check.verdict:<12}  {check.numbers}" for check in checks
            )
        )
    return "\n\n".join(parts)


def baselines_json(results: Sequence[BaselineResult]) -> list[dict[str, Any]]:
    return [
        {
            "baseline": r.key,
            "concurrency": r.concurrency,
            "requests": r.stats.requests,
            "ok": r.stats.ok,
            "errors": r.stats.errors,
            "error_kinds": r.stats.error_kinds,
            "ok_per_second": r.stats.ok_per_second,
            "p50_ms": ms(r.stats.p50_seconds),
            "p99_ms": ms(r.stats.p99_seconds),
            "cpu_us_per_request": {g: r.cpu_us_per_request(g) for g in _CPU_GROUPS},
        }
        for r in results
    ]


def targets_json(checks: Sequence[TargetCheck]) -> list[dict[str, str]]:
    return [{"target": c.target, "verdict": c.verdict, "numbers": c.numbers} for c in checks]


def _rate(result: BaselineResult) -> str:
    p99 = number(ms(result.stats.p99_seconds), 1)
    return f"{result.stats.ok_per_second:,.0f} req/s (p99 {p99} ms)"


def _share(result: BaselineResult, of: BaselineResult | None) -> str:
    if of is None or not of.stats.ok_per_second:
        return ""
    return f", {result.stats.ok_per_second / of.stats.ok_per_second:.0%} of direct"


def _errors(result: BaselineResult) -> str:
    kinds = result.stats.error_kinds
    if not kinds:
        return str(result.stats.errors)
    return f"{result.stats.errors} ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})"
