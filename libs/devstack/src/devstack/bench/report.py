"""The benchmark's output: a table for the terminal, and docs/benchmarks.md.

The markdown file is a set of `## ` sections. A run rewrites "Latest run" and the
"Scenario: <title>" sections it measured; every other section (scenarios not run this
time, hand-written notes) is kept as it was, in place, so partial runs accumulate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from devstack.bench.runner import (
    CPU_GROUPS,
    VIA_DIRECT,
    VIA_GATEWAY,
    VIA_LABELS,
    BenchReport,
    RunResult,
)
from devstack.bench.scenarios import Scenario

LATEST_RUN_HEADING = "Latest run"
SCENARIO_PREFIX = "Scenario: "
_CPU_LABELS = {
    "gateway": "Envoy",
    "service": "service",
    "postgres": "PostgreSQL",
    "redis": "Redis",
    "load generator": "load gen",
}
_HEADERS = (
    "path", "conc", "req/s", "p50 ms", "p99 ms", "errors", "429s", "cache hits",
    *(f"CPU µs/req {_CPU_LABELS[group]}" for group in CPU_GROUPS),
)  # fmt: skip
_MISSING = "-"  # no value: no request completed, or the counter was not readable
_SECTION = re.compile(r"^## (.+)$", re.MULTILINE)

PREAMBLE = """# MedStation benchmarks

Written by `make bench` (`python -m devstack bench`; the code is in
`libs/devstack/src/devstack/bench/`). Each scenario runs for a fixed time at each
concurrency level after a warm-up at that level, through the gateway (REST/JSON, wrk,
with a real access token) and directly against the service (gRPC, our `grpc.aio` load
generator). A run replaces the sections of the scenarios it measured and keeps all
others, each saying when and by which command it was measured; sections without the
`Scenario:` prefix are hand-written and kept as they are.

Columns: **req/s** successful requests per second (failures are counted apart, so a
rate limiter's quick 429s never look like throughput); **p50/p99**
latency of successful requests (wrk's `--latency` distribution; our generator's 1 %-wide
log histogram); **errors** failed requests (non-2xx, socket errors, gRPC status other
than OK); **429s** requests Envoy's local rate limiter turned away (from its admin
stats); **cache hits** the share of the patient cache's reads that were hits during
the run (the service's `cache_requests_total` counters; `-` when the run read no
cached record); **CPU µs/req** user+system CPU time from `/proc/<pid>/stat` of each process over
the measured window, divided by the successful requests: Envoy (gateway port), the service (its
gRPC port), PostgreSQL (every `postgres` process, plus exited backends via the
postmaster's children time), Redis, and the load generator itself (wrk or our Python
process). The machine is shared and the load generator runs on the same two cores, so
compare rows of one run rather than runs of different days.
"""


def text_table(results: list[RunResult]) -> str:
    headers = ("scenario", *_HEADERS)
    titled = [(r.scenario.title, *_cells(r, short_path=True)) for r in results]
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *titled, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in titled]
    return "\n".join(lines)


def markdown_table(results: Iterable[RunResult]) -> str:
    lines = [
        "| " + " | ".join(_HEADERS) + " |",
        "|" + "|".join(["---"] + ["--:"] * (len(_HEADERS) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(_cells(result)) + " |" for result in results]
    return "\n".join(lines)


def _cells(result: RunResult, short_path: bool = False) -> tuple[str, ...]:
    stats = result.stats
    path = result.via if short_path else VIA_LABELS[result.via]
    cpu = tuple(_number(result.cpu_us_per_request(group), 0) for group in CPU_GROUPS)
    return (
        path,
        str(result.concurrency),
        _number(stats.ok_per_second, 1),
        _number(_ms(stats.p50_seconds), 2),
        _number(_ms(stats.p99_seconds), 2),
        _errors(result),
        _MISSING if result.rate_limited is None else str(result.rate_limited),
        _MISSING if result.cache_hit_ratio is None else f"{result.cache_hit_ratio:.0%}",
        *cpu,
    )


def _errors(result: RunResult) -> str:
    kinds = result.stats.error_kinds
    if not kinds:
        return str(result.stats.errors)
    described = ", ".join(f"{name} {count}" for name, count in sorted(kinds.items()))
    return f"{result.stats.errors} ({described})"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def _number(value: float | None, decimals: int) -> str:
    return _MISSING if value is None else f"{value:,.{decimals}f}"


# --- docs/benchmarks.md -----------------------------------------------------------------


def write_document(path: Path, report: BenchReport) -> None:
    """Update `path` with this run's sections, keeping every section it did not measure."""
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    sections = {LATEST_RUN_HEADING: latest_run_section(report)}
    for scenario in report.scenarios:
        results = [r for r in report.results if r.scenario.key == scenario.key]
        if results:
            sections[SCENARIO_PREFIX + scenario.title] = scenario_section(scenario, results, report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(merge_sections(old, sections), encoding="utf-8")


def merge_sections(old: str, new: dict[str, str]) -> str:
    """PREAMBLE, then the old sections in order (replaced by `new` where named), then the rest."""
    kept = split_sections(old)
    merged = [PREAMBLE.rstrip()]
    for heading, body in kept:
        merged.append(f"## {heading}\n\n{new.get(heading, body).strip()}")
    known = {heading for heading, _ in kept}
    merged += [
        f"## {heading}\n\n{body.strip()}" for heading, body in new.items() if heading not in known
    ]
    return "\n\n".join(merged) + "\n"


def split_sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) of each `## ` section; whatever precedes the first one is dropped."""
    matches = list(_SECTION.finditer(text))
    if not matches:
        return []
    ends = [match.start() for match in matches[1:]] + [len(text)]
    return [
        (match.group(1).strip(), text[match.end() : end].strip())
        for match, end in zip(matches, ends, strict=True)
    ]


def latest_run_section(report: BenchReport) -> str:
    plan = report.plan
    levels = ", ".join(str(level) for level in plan.concurrency)
    lines = [
        f"- when: {_when(report)}",
        f"- command: `{report.command}`",
        f"- each level: {plan.warmup:g} s warm-up, then {plan.duration:g} s measured; "
        f"concurrency {levels}",
        f"- data: the bench clinician's {report.patients} patients (1 to 5 SOAP notes each)"
        if report.patients
        else "- data: no patients (no patient scenario ran)",
    ]
    lines += [f"- skipped: {reason}" for reason in report.skipped]
    lines += ["", "| machine | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in report.facts]
    return "\n".join(lines)


def scenario_section(scenario: Scenario, results: list[RunResult], report: BenchReport) -> str:
    text = reading(results)
    longest = max(result.stats.requests for result in results)
    if scenario.cold_cache and longest > report.patients:
        # Past the end of the cycle a run reads patients it has itself just cached.
        text += (
            f" The longest run made {longest:,} requests over a cycle of {report.patients:,} "
            "patients, so its requests after the first lap could be cache hits "
            "(`--patients` makes the cycle longer)."
        )
    return "\n\n".join(
        (
            f"{scenario.summary[0].upper()}{scenario.summary[1:]}. "
            f"Measured {_when(report)} with `{report.command}`.",
            markdown_table(results),
            text,
        )
    )


def reading(results: list[RunResult]) -> str:
    """A few sentences computed from the numbers: peaks, the gateway's cost, who spends CPU."""
    sentences = []
    peaks = {}
    for via in (VIA_GATEWAY, VIA_DIRECT):
        rows = [r for r in results if r.via == via]
        if rows:
            peak = max(rows, key=lambda r: r.stats.ok_per_second)
            peaks[via] = peak
            sentences.append(
                f"{VIA_LABELS[via].split(' · ')[0].capitalize()}: peak "
                f"{peak.stats.ok_per_second:,.0f} req/s at concurrency {peak.concurrency} "
                f"(p99 {_number(_ms(peak.stats.p99_seconds), 1)} ms)."
            )
    if len(peaks) == 2 and peaks[VIA_DIRECT].stats.ok_per_second > 0:
        ratio = peaks[VIA_GATEWAY].stats.ok_per_second / peaks[VIA_DIRECT].stats.ok_per_second
        sentences.append(f"Through the gateway: {ratio:.0%} of the direct peak.")
    if peaks:
        sentences.append(_cpu_sentence(next(iter(peaks.values()))))
    errors = sum(r.stats.errors for r in results)
    limited = sum(r.rate_limited or 0 for r in results)
    sentences.append(
        f"Errors: {errors}" + (f", of which {limited} were the gateway's 429s." if limited else ".")
    )
    return "Reading: " + " ".join(sentences)


def _cpu_sentence(peak: RunResult) -> str:
    server = {
        group: value
        for group in ("gateway", "service", "postgres", "redis")
        if (value := peak.cpu_us_per_request(group)) is not None
    }
    if not server:
        return ""
    top = max(server, key=lambda group: server[group])
    return (
        f"At that peak the server side spent {sum(server.values()):,.0f} µs CPU per request, "
        f"most in {_CPU_LABELS[top]} ({server[top]:,.0f} µs)."
    )


def _when(report: BenchReport) -> str:
    return report.started_at.strftime("%Y-%m-%d %H:%M UTC")


def results_json(report: BenchReport) -> str:
    """Machine-readable results (the smoke test reads them)."""
    return json.dumps(
        {
            "command": report.command,
            "skipped": report.skipped,
            "results": [
                {
                    "scenario": r.scenario.key,
                    "via": r.via,
                    "concurrency": r.concurrency,
                    "requests": r.stats.requests,
                    "ok": r.stats.ok,
                    "errors": r.stats.errors,
                    "error_kinds": r.stats.error_kinds,
                    "ok_per_second": r.stats.ok_per_second,
                    "p50_ms": _ms(r.stats.p50_seconds),
                    "p99_ms": _ms(r.stats.p99_seconds),
                    "rate_limited": r.rate_limited,
                    "cache_hit_ratio": r.cache_hit_ratio,
                    "cpu_us_per_request": {g: r.cpu_us_per_request(g) for g in CPU_GROUPS},
                }
                for r in report.results
            ],
        },
        indent=2,
    )
