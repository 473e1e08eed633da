"""The benchmark's output: tables for the terminal, and docs/benchmarks.md.

The markdown file is a set of `## ` sections. A run rewrites "Latest run", "Targets",
"Ceilings and reference", "Memory" (these four lead the file, in that order), the
"Scenario: <title>" sections it measured and "Soak" when one ran; every other section
(scenarios not run this time, hand-written notes) is kept as it was, in place, so
partial runs accumulate. Only a "Scenario:" section that names no scenario the bench
has any more (renamed or removed) is dropped: no run would ever replace its numbers.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from devstack.bench import (
    comparison_report,
    custom_report,
    memory_report,
    stream_runs,
    summary_jobs,
    targets,
)
from devstack.bench.baselines import BaselineResult, ratio_to_ceiling
from devstack.bench.cpu_groups import CPU_GROUPS
from devstack.bench.custom_report import CPU_LABELS as _CPU_LABELS
from devstack.bench.results import BenchReport, RunResult
from devstack.bench.scenarios import (
    PATIENT_CACHE_DEFAULT_ENTRIES,
    PATIENT_CACHE_ENTRIES_VARIABLE,
    SCENARIOS,
    Scenario,
)
from devstack.bench.table import MISSING, aligned, markdown, ms, number, percent
from devstack.bench.vias import VIA_DIRECT, VIA_GATEWAY, VIA_LABELS

LATEST_RUN_HEADING = "Latest run"
SCENARIO_PREFIX = "Scenario: "
_HEADERS = (
    "path", "conc", "req/s", "x ceiling", "p50 ms", "p99 ms", "errors", "429s", "cache hits",
    *(f"CPU µs/req {_CPU_LABELS[group]}" for group in CPU_GROUPS),
)  # fmt: skip
_SECTION = re.compile(r"^## (.+)$", re.MULTILINE)
# The run's summary, first in the file whatever order an older file had.
LEADING_HEADINGS = (
    LATEST_RUN_HEADING,
    comparison_report.TARGETS_HEADING,
    comparison_report.CEILINGS_HEADING,
    memory_report.MEMORY_HEADING,
)

PREAMBLE = f"""# MedStation benchmarks

Written by `make bench` (`python -m devstack bench`; the code is in
`libs/devstack/src/devstack/bench/`). When no stack answers on the `make run` ports,
`make bench` starts one itself (the code `make run` runs), with the chat service's
per-user send limit and the gateway's rate limit raised so no level is refused, and
stops it afterwards; a running stack is used as it is. Each scenario runs for a fixed
time at each concurrency level after a warm-up at that level, through the gateway
(REST/JSON, wrk, with a real access token) and directly against the service (gRPC, our
`grpc.aio` load generator). In the same run, on the same cores, it measures what the
numbers are read against: a bare `grpc.aio` echo service directly (h2load) and through
a gateway rendered from the same template (wrk), and the FastAPI monolith MedStation
replaces (see "Ceilings and reference"); "Targets" computes issue 9's targets from
them. A run replaces the sections it measured and keeps all others, each saying when
and by which command it was measured (a `Scenario:` section of a scenario the bench no
longer has is dropped); sections without the `Scenario:` prefix that a run does not
write are hand-written and kept as they are.

Columns: **req/s** successful requests per second (failures are counted apart, so a
rate limiter's quick 429s never look like throughput); **x ceiling** req/s over the
echo ceiling of the same path at the same concurrency (gateway rows: the echo through
the gateway; direct rows: the echo called with h2load); **p50/p99**
latency of successful requests (wrk's `--latency` distribution; our generator's 1 %-wide
log histogram); **errors** failed requests (non-2xx, socket errors, gRPC status other
than OK); **429s** requests Envoy's local rate limiter turned away (from its admin
stats); **cache hits** the share of patient-record's patient cache reads that were hits
during the measured window (its `cache_requests_total{{cache="patient"}}` counters, read
from `--patient-metrics` before and after each run; `-` when the run made no patient
cache read, as GetMe or CreateNote, or the counters could not be read);
**CPU µs/req** user+system CPU time from `/proc/<pid>/stat` of each process over
the measured window, divided by the successful requests: Envoy (gateway port), the service (its
gRPC port), other services on the request path (patient-record, for summaries and
chat), PostgreSQL (every `postgres` process, plus exited backends via the
postmaster's children time), Redis, and the load generator itself (wrk, h2load or our
Python process). The machine is shared and the load generator runs on the same two
cores, so compare rows of one run rather than runs of different days.

GetPatient is measured on its two paths. "GetPatient (one patient)" reads the same
patient on every request, so after the first read its record comes from patient-record's
in-process cache; each read still checks access and writes its audit row in PostgreSQL,
whose statement also returns the row's version the cached record is checked against.
"GetPatient (a different patient each time)" cycles through all bench patients, more
than the cache holds (`{PATIENT_CACHE_ENTRIES_VARIABLE}`,
{PATIENT_CACHE_DEFAULT_ENTRIES} by default), so each record comes from PostgreSQL, in the
statement that checks access and writes the audit row. Their cache hits column shows
which path each run took, and the two targets read from these rows are not met when it
contradicts their names (over {targets.DB_MAX_HIT_RATIO:.0%} hits for the PostgreSQL
one, under {targets.CACHE_MIN_HIT_RATIO:.0%} for the cache one).

Summaries and chat use the offline model (no network, no GPU): what is measured is
MedStation's own cost around a model call, not a model. Streamed replies and summary
jobs are measured by clients of the bench's own (their sections say how), since wrk
sees only whole responses. The chat service limits the messages one user may send (30
per minute by default, a product feature) and the gateway has a gateway-wide token
bucket (250 req/s by default); the bench sends as one user, hundreds of requests per
second, so a running stack it measures must be started with both raised:
`MEDSTATION_RATE_LIMIT_MESSAGES=1000000 MEDSTATION_GATEWAY_RATE_LIMIT_PER_SECOND=1000000
MEDSTATION_GATEWAY_RATE_LIMIT_BURST=1000000 make run`. Both limiters still run on every
request, they only never refuse; without the raised chat limit the chat scenarios are
skipped with a `skipped:` line saying so, and "Latest run" says what the gateway's
bucket was.
"""


def text_table(report: BenchReport, checks: Sequence[targets.TargetCheck] = ()) -> str:
    """Every table of the run, for the terminal."""
    titled = [
        (r.scenario.title, *_cells(r, report.baselines, short_path=True)) for r in report.results
    ]
    tables = [aligned(("scenario", *_HEADERS), titled)] if titled else []
    if custom := custom_report.terminal_tables(report.streams, report.jobs):
        tables.append(custom)
    if memory := memory_report.terminal_table(report.memory):
        tables.append(memory)
    if comparison := comparison_report.terminal_tables(report.baselines, checks):
        tables.insert(0, comparison)
    return "\n\n".join(tables)


def markdown_table(results: Iterable[RunResult], baselines: Sequence[BaselineResult] = ()) -> str:
    return markdown(_HEADERS, [_cells(result, baselines) for result in results])


def _cells(
    result: RunResult, baselines: Sequence[BaselineResult], short_path: bool = False
) -> tuple[str, ...]:
    stats = result.stats
    path = result.via if short_path else VIA_LABELS[result.via]
    cpu = tuple(number(result.cpu_us_per_request(group), 0) for group in CPU_GROUPS)
    ratio = ratio_to_ceiling(result.via, result.concurrency, stats.ok_per_second, baselines)
    return (
        path,
        str(result.concurrency),
        number(stats.ok_per_second, 1),
        MISSING if ratio is None else f"{ratio:.2f}",
        number(ms(stats.p50_seconds), 2),
        number(ms(stats.p99_seconds), 2),
        _errors(result),
        MISSING if result.rate_limited is None else str(result.rate_limited),
        percent(result.cache_hit_ratio),
        *cpu,
    )


def _errors(result: RunResult) -> str:
    kinds = result.stats.error_kinds
    if not kinds:
        return str(result.stats.errors)
    described = ", ".join(f"{name} {count}" for name, count in sorted(kinds.items()))
    return f"{result.stats.errors} ({described})"


# --- docs/benchmarks.md -----------------------------------------------------------------


def write_document(path: Path, report: BenchReport, chart: Path | None = None) -> None:
    """Update `path` with this run's sections, keeping every section it did not measure."""
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    measured = f"{_when(report)} with `{report.command}`"
    checks = targets.evaluate(report)
    sections = {
        LATEST_RUN_HEADING: latest_run_section(report, _relative(chart, path.parent)),
        comparison_report.TARGETS_HEADING: comparison_report.targets_section(
            checks, report.plan.concurrency
        ),
    }
    if report.baselines:
        sections[comparison_report.CEILINGS_HEADING] = comparison_report.ceilings_section(
            report.baselines, measured
        )
    if report.memory is not None and report.memory.processes:
        sections[memory_report.MEMORY_HEADING] = memory_report.memory_section(
            report.memory, measured
        )
    for scenario in report.scenarios:
        results = [r for r in report.results if r.scenario.key == scenario.key]
        if results:
            sections[SCENARIO_PREFIX + scenario.title] = scenario_section(scenario, results, report)
    if report.streams:
        heading = SCENARIO_PREFIX + stream_runs.TITLE
        sections[heading] = custom_report.stream_section(report.streams, measured)
    if report.jobs:
        heading = SCENARIO_PREFIX + summary_jobs.TITLE
        sections[heading] = custom_report.jobs_section(report.jobs, measured)
    if report.soak is not None and report.soak.chunks:
        sections[memory_report.SOAK_HEADING] = memory_report.soak_section(report.soak, measured)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(merge_sections(old, sections), encoding="utf-8")


def merge_sections(old: str, new: dict[str, str]) -> str:
    """PREAMBLE, the leading sections, then the old sections in order (replaced by `new`
    where named, dropped when their scenario is gone), then the rest of `new`."""
    kept = [(heading, body) for heading, body in split_sections(old) if not _retired(heading)]
    bodies = dict(kept) | new
    order = [heading for heading in LEADING_HEADINGS if heading in bodies]
    order += [heading for heading, _ in kept if heading not in order]
    order += [heading for heading in new if heading not in order]
    merged = [PREAMBLE.rstrip()]
    merged += [f"## {heading}\n\n{bodies[heading].strip()}" for heading in order]
    return "\n\n".join(merged) + "\n"


def _retired(heading: str) -> bool:
    """A scenario section of a scenario the bench no longer measures under that title."""
    titles = {scenario.title for scenario in SCENARIOS} | {stream_runs.TITLE, summary_jobs.TITLE}
    return heading.startswith(SCENARIO_PREFIX) and heading[len(SCENARIO_PREFIX) :] not in titles


def _relative(target: Path | None, start: Path) -> str | None:
    return None if target is None else os.path.relpath(target, start)


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


def latest_run_section(report: BenchReport, chart: str | None = None) -> str:
    plan = report.plan
    levels = ", ".join(str(level) for level in plan.concurrency)
    lines = [
        f"- when: {_when(report)}",
        f"- command: `{report.command}`",
        f"- took: {_duration(report.seconds)}" if report.seconds else "",
        f"- each level: {plan.warmup:g} s warm-up, then {plan.duration:g} s measured; "
        f"concurrency {levels}",
        f"- data: the bench clinician's {report.patients} patients the scenarios read "
        "(1 to 5 SOAP notes each)"
        if report.patients
        else "- data: no patients (no patient scenario ran)",
    ]
    lines += [f"- {note}" for note in report.notes]
    lines += [f"- skipped: {reason}" for reason in report.skipped]
    lines = [line for line in lines if line]
    lines += ["", "| machine | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in report.facts]
    if chart is not None:
        lines += ["", f"![Throughput and p99 of every row of this run]({chart})"]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def scenario_section(scenario: Scenario, results: list[RunResult], report: BenchReport) -> str:
    text = reading(results)
    if scenario.fresh_summaries:
        text += " " + _freshness(results)
    return "\n\n".join(
        (
            f"{scenario.summary[0].upper()}{scenario.summary[1:]}. "
            f"Measured {_when(report)} with `{report.command}`.",
            markdown_table(results, report.baselines),
            text,
        )
    )


def _freshness(results: list[RunResult]) -> str:
    """How fresh the fresh-summary runs were: a run past its batch met summarized charts."""
    over = [r for r in results if r.fresh_batch is not None and r.stats.requests > r.fresh_batch]
    text = (
        "Freshness: each run had a batch of patients given one new note just before it "
        "(none had a summary of that chart), sized from the rate seen so far with a margin."
    )
    if not over:
        return text + " No run made more requests than its batch had patients."
    beyond = sum(r.stats.requests - (r.fresh_batch or 0) for r in over)
    return text + (
        f" {len(over)} of {len(results)} runs made more requests than their batch had "
        f"patients: up to {beyond:,} requests found a summary written earlier in the same "
        "run (a larger `--patients` gives larger batches)."
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
                f"(p99 {number(ms(peak.stats.p99_seconds), 1)} ms)."
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
            "baselines": comparison_report.baselines_json(report.baselines),
            "targets": comparison_report.targets_json(targets.evaluate(report)),
            "memory": memory_report.memory_json(report.memory),
            "soak": memory_report.soak_json(report.soak),
            "streams": custom_report.streams_json(report.streams),
            "jobs": custom_report.jobs_json(report.jobs),
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
                    "ratio_to_ceiling": ratio_to_ceiling(
                        r.via, r.concurrency, r.stats.ok_per_second, report.baselines
                    ),
                    "p50_ms": ms(r.stats.p50_seconds),
                    "p99_ms": ms(r.stats.p99_seconds),
                    "rate_limited": r.rate_limited,
                    "cache_hit_ratio": r.cache_hit_ratio,
                    "cpu_us_per_request": {g: r.cpu_us_per_request(g) for g in CPU_GROUPS},
                    "fresh_batch": r.fresh_batch,
                }
                for r in report.results
            ],
        },
        indent=2,
    )
