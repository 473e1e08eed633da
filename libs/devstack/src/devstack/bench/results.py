"""What a benchmark run produced: a row per scenario, path and level, and the whole report
(baselines, streams, jobs, memory, soak) that the markdown, the chart and the targets are
made from."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from devstack.bench.baselines import BaselineResult
from devstack.bench.load_stats import LoadStats
from devstack.bench.memory import MemoryReport
from devstack.bench.plan import RunPlan
from devstack.bench.scenarios import Scenario
from devstack.bench.soak import SoakResult
from devstack.bench.stream_runs import StreamResult
from devstack.bench.summary_jobs import JobsResult


@dataclass(frozen=True)
class RunResult:
    scenario: Scenario
    via: str
    concurrency: int
    stats: LoadStats
    cpu_seconds: dict[str, float]
    rate_limited: int | None  # 429s Envoy's local rate limiter answered during the run
    # The share of the patient cache's reads that hit during the run (bench.patient_cache);
    # None when the run made none or the counters could not be read.
    cache_hit_ratio: float | None = None
    fresh_batch: int | None = None  # fresh-summary runs: patients made fresh for it

    def cpu_us_per_request(self, group: str) -> float | None:
        """CPU per successful request: what a useful answer cost (failures included)."""
        if not self.stats.ok or group not in self.cpu_seconds:
            return None
        return self.cpu_seconds[group] * 1e6 / self.stats.ok


@dataclass
class BenchReport:
    command: str
    started_at: datetime
    plan: RunPlan
    facts: list[tuple[str, str]]
    scenarios: list[Scenario]
    results: list[RunResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    patients: int = 0
    streams: list[StreamResult] = field(default_factory=list)
    jobs: list[JobsResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # more "data" lines of the latest run
    baselines: list[BaselineResult] = field(default_factory=list)
    memory: MemoryReport | None = None
    soak: SoakResult | None = None
    seconds: float | None = None  # the whole command, from start (a stack's included) to end
