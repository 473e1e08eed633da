"""The report's tables for the measurements wrk cannot make: streamed replies, summary jobs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from devstack.bench import cpu_groups
from devstack.bench.stream_runs import STREAM_LABELS, StreamResult
from devstack.bench.summary_jobs import JOB_CPU_GROUPS, WORKERS, JobsResult
from devstack.bench.table import MISSING, aligned, markdown, ms, number

CPU_LABELS = {
    cpu_groups.GATEWAY: "Envoy",
    cpu_groups.SERVICE: "service",
    cpu_groups.OTHERS: "other services",
    cpu_groups.POSTGRES: "PostgreSQL",
    cpu_groups.REDIS: "Redis",
    cpu_groups.LOAD_GENERATOR: "load gen",
}
_JOB_CPU_LABELS = {
    WORKERS: "workers",
    cpu_groups.SERVICE: "summary service",
    cpu_groups.OTHERS: "patient-record",
}
_STREAM_HEADERS = (
    "path", "conc", "streams/s", "first chunk p50 ms", "first chunk p99 ms",
    "whole reply p50 ms", "whole reply p99 ms", "errors",
    *(f"CPU µs/stream {CPU_LABELS[group]}" for group in cpu_groups.CPU_GROUPS),
)  # fmt: skip
_JOB_HEADERS = (
    "workers", "jobs", "succeeded", "failed", "unfinished", "jobs/s", "p50 s", "p99 s",
    *(f"CPU ms/job {_JOB_CPU_LABELS.get(g, CPU_LABELS.get(g, g))}" for g in JOB_CPU_GROUPS),
)  # fmt: skip
STREAM_SUMMARY = (
    "A question in one of the bench chats, the offline model's reply streamed back "
    "(StreamMessage; through the gateway as newline-delimited JSON). **first chunk**: "
    "from sending the request to the first message of the stream, what a user waits "
    "before text appears; **whole reply**: to the stored exchange at its end; "
    "**streams/s**: streams that ended with it, per second. Measured by the bench's own "
    "clients (grpc.aio directly; httpx through the gateway), since wrk sees only whole "
    "responses"
)
JOBS_SUMMARY = (
    "Summary jobs end to end: {jobs} jobs queued at once (CreateSummaryJob, 16 in flight), "
    "each for a different bench patient with no stored summary for its chart (made fresh "
    "by one new note, deleted again afterwards), until every job ended. **jobs/s**: jobs "
    "that succeeded over the span from the first job's creation to the last one's end; "
    "**p50/p99**: a job's own creation-to-end time (both from the jobs' timestamps, so "
    "the bench's 0.2 s polling does not blur them); **CPU ms/job**: over the whole "
    "window, per job that succeeded. One worker is the stack's own; for more, the bench "
    "starts workers with the same command line and environment, and stops them after"
)


def stream_rows(results: Sequence[StreamResult], short_path: bool = False) -> list[list[str]]:
    rows = []
    for result in results:
        load, stats = result.stats.load, result.stats
        rows.append(
            [
                result.via if short_path else STREAM_LABELS[result.via],
                str(result.concurrency),
                number(load.ok_per_second, 1),
                number(ms(stats.first_p50_seconds), 2),
                number(ms(stats.first_p99_seconds), 2),
                number(ms(load.p50_seconds), 2),
                number(ms(load.p99_seconds), 2),
                _errors(load.errors, load.error_kinds),
                *(number(result.cpu_us_per_stream(g), 0) for g in cpu_groups.CPU_GROUPS),
            ]
        )
    return rows


def job_rows(results: Sequence[JobsResult]) -> list[list[str]]:
    return [
        [
            str(r.workers),
            str(r.jobs),
            str(r.succeeded),
            str(r.failed),
            str(r.unfinished),
            number(r.jobs_per_second, 1),
            number(r.p50_seconds, 2),
            number(r.p99_seconds, 2),
            *(number(r.cpu_ms_per_job(group), 1) for group in JOB_CPU_GROUPS),
        ]
        for r in results
    ]


def terminal_tables(streams: Sequence[StreamResult], jobs: Sequence[JobsResult]) -> str:
    parts = []
    if streams:
        parts.append(aligned(_STREAM_HEADERS, stream_rows(streams, short_path=True)))
    if jobs:
        parts.append(aligned(_JOB_HEADERS, job_rows(jobs)))
    return "\n\n".join(parts)


def stream_section(results: Sequence[StreamResult], measured: str) -> str:
    sentences = []
    for via in (via for via in STREAM_LABELS if any(r.via == via for r in results)):
        rows = [r for r in results if r.via == via]
        quiet = min(rows, key=lambda r: r.concurrency)
        peak = max(rows, key=lambda r: r.stats.load.ok_per_second)
        sentences.append(
            f"{via.capitalize()}: first chunk after {_ms_text(quiet.stats.first_p50_seconds)} "
            f"(p50) at concurrency {quiet.concurrency}; peak "
            f"{peak.stats.load.ok_per_second:,.1f} streams/s at concurrency "
            f"{peak.concurrency} (first chunk p99 {_ms_text(peak.stats.first_p99_seconds)})."
        )
    sentences.append(f"Errors: {sum(r.stats.load.errors for r in results)}.")
    return "\n\n".join(
        (
            f"{STREAM_SUMMARY}. Measured {measured}.",
            markdown(_STREAM_HEADERS, stream_rows(results)),
            "Reading: " + " ".join(sentences),
        )
    )


def jobs_section(results: Sequence[JobsResult], measured: str) -> str:
    sentences = []
    base = next((r for r in results if r.workers == 1 and r.jobs_per_second), None)
    for result in results:
        rate = result.jobs_per_second
        text = f"{result.workers} worker{'s' if result.workers > 1 else ''}: " + (
            f"{rate:,.1f} jobs/s" if rate else "no job succeeded"
        )
        if base is not None and base is not result and rate and base.jobs_per_second:
            text += f" ({rate / base.jobs_per_second:.2f} times one worker's)"
        sentences.append(text + ".")
    failed = sum(r.failed + r.unfinished for r in results)
    sentences.append(f"Jobs that failed or did not end: {failed}.")
    return "\n\n".join(
        (
            f"{JOBS_SUMMARY.format(jobs=results[0].jobs)}. Measured {measured}.",
            markdown(_JOB_HEADERS, job_rows(results)),
            "Reading: " + " ".join(sentences),
        )
    )


def streams_json(results: Sequence[StreamResult]) -> list[dict[str, Any]]:
    return [
        {
            "via": r.via,
            "concurrency": r.concurrency,
            "streams": r.stats.load.requests,
            "ok": r.stats.load.ok,
            "errors": r.stats.load.errors,
            "error_kinds": r.stats.load.error_kinds,
            "ok_per_second": r.stats.load.ok_per_second,
            "first_chunk_p50_ms": ms(r.stats.first_p50_seconds),
            "first_chunk_p99_ms": ms(r.stats.first_p99_seconds),
            "complete_p50_ms": ms(r.stats.load.p50_seconds),
            "complete_p99_ms": ms(r.stats.load.p99_seconds),
            "cpu_us_per_stream": {g: r.cpu_us_per_stream(g) for g in cpu_groups.CPU_GROUPS},
        }
        for r in results
    ]


def jobs_json(results: Sequence[JobsResult]) -> list[dict[str, Any]]:
    return [
        {
            "workers": r.workers,
            "jobs": r.jobs,
            "succeeded": r.succeeded,
            "failed": r.failed,
            "unfinished": r.unfinished,
            "seconds": r.seconds,
            "jobs_per_second": r.jobs_per_second,
            "p50_seconds": r.p50_seconds,
            "p99_seconds": r.p99_seconds,
            "cpu_ms_per_job": {g: r.cpu_ms_per_job(g) for g in JOB_CPU_GROUPS},
        }
        for r in results
    ]


def _errors(count: int, kinds: dict[str, int]) -> str:
    if not kinds:
        return str(count)
    return f"{count} ({', '.join(f'{name} {n}' for name, n in sorted(kinds.items()))})"


def _ms_text(seconds: float | None) -> str:
    return MISSING if seconds is None else f"{seconds * 1e3:,.1f} ms"
