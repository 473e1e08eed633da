"""The worker's Prometheus metrics, served on its metrics port beside the RPC ones."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


@dataclass(frozen=True)
class WorkerMetrics:
    processed: Counter
    duration: Histogram
    queued: Gauge
    oldest_queued_age: Gauge
    events: Counter
    loop_errors: Counter


def build_worker_metrics(registry: CollectorRegistry) -> WorkerMetrics:
    return WorkerMetrics(
        processed=Counter(
            "summary_jobs_processed_total",
            "Job deliveries processed, by outcome (succeeded, failed, retrying, skipped, "
            "lost, error).",
            ["outcome"],
            registry=registry,
        ),
        duration=Histogram(
            "summary_job_duration_seconds",
            "Time from claiming a job to committing the attempt's outcome.",
            ["outcome"],
            buckets=_DURATION_BUCKETS,
            registry=registry,
        ),
        queued=Gauge(
            "summary_jobs_queued",
            "Jobs waiting in QUEUED (PostgreSQL's count, whatever the stream holds).",
            registry=registry,
        ),
        oldest_queued_age=Gauge(
            "summary_job_oldest_queued_age_seconds",
            "Age of the oldest QUEUED job (0 when none waits).",
            registry=registry,
        ),
        events=Counter(
            "summary_patient_events_handled_total",
            "Patient-record events handled, by event type.",
            ["event_type"],
            registry=registry,
        ),
        loop_errors=Counter(
            "summary_worker_loop_errors_total",
            "Failures of the worker's loops (jobs, reconciler, events); each is retried.",
            ["loop"],
            registry=registry,
        ),
    )
