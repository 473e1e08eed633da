"""The report's picture: throughput and p99 latency of every row, one bar per concurrency
level, written as a PNG next to the markdown (matplotlib, a bench-only dependency: without
it the chart is skipped and the run says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack.bench.baselines import ECHO_GATEWAY_BESIDE, BaselineResult
from devstack.bench.results import RunResult

_BAR_HEIGHT_INCHES = 0.16
_MARGIN_INCHES = 1.6
_DPI = 110


@dataclass(frozen=True)
class ChartPoint:
    label: str  # one row of the chart: what was measured, and on which path
    concurrency: int
    ok_per_second: float
    p99_ms: float | None


def chart_points(
    results: Sequence[RunResult], baselines: Sequence[BaselineResult]
) -> list[ChartPoint]:
    """The baselines first (what the rest is read against), then every scenario row."""
    points = [
        ChartPoint(b.baseline.path, b.concurrency, b.stats.ok_per_second, _ms(b.stats.p99_seconds))
        for b in baselines
        if b.key != ECHO_GATEWAY_BESIDE  # the echo gateway's row again, for one target
    ]
    points += [
        ChartPoint(
            f"{r.scenario.title} · {r.via}",
            r.concurrency,
            r.stats.ok_per_second,
            _ms(r.stats.p99_seconds),
        )
        for r in results
    ]
    return points


def write_chart(path: Path, points: Sequence[ChartPoint], title: str) -> bool:
    """Two panels (req/s, p99 ms; log scales), a row per label; False without matplotlib."""
    try:
        # A bench-only dependency (typed where it is installed), imported when used.
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")
        from matplotlib.figure import Figure  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return False
    labels = list(dict.fromkeys(point.label for point in points))
    levels = sorted({point.concurrency for point in points})
    rows = len(labels) * max(1, len(levels))
    figure = Figure(figsize=(13, _MARGIN_INCHES + rows * _BAR_HEIGHT_INCHES), dpi=_DPI)
    throughput, latency = figure.subplots(1, 2, sharey=True)
    band = 0.8 / max(1, len(levels))
    for index, level in enumerate(levels):
        at_level = {p.label: p for p in points if p.concurrency == level}
        positions = [row + index * band for row in range(len(labels))]
        rates = [at_level[label].ok_per_second if label in at_level else 0 for label in labels]
        p99s = [_or_zero(at_level.get(label)) for label in labels]
        throughput.barh(positions, rates, height=band, label=f"concurrency {level}")
        latency.barh(positions, p99s, height=band, label=f"concurrency {level}")
    centres = [row + band * (len(levels) - 1) / 2 for row in range(len(labels))]
    throughput.set_yticks(centres, labels, fontsize=8)
    throughput.invert_yaxis()
    for axes, name in ((throughput, "successful requests per second"), (latency, "p99 ms")):
        axes.set_xscale("log")
        axes.set_xlabel(f"{name} (log scale)")
        axes.grid(axis="x", which="both", alpha=0.3)
    throughput.legend(loc="lower right", fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return True


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def _or_zero(point: ChartPoint | None) -> float:
    return point.p99_ms or 0.0 if point is not None else 0.0
