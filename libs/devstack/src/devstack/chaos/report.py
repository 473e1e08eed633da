"""What a scenario measured, whether it met the bar, and the table `make chaos` prints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from devstack.bench import table


@dataclass
class Result:
    """One scenario's numbers. `problems` lists every requirement it missed (empty: pass)."""

    scenario: str
    requests: int = 0
    read_errors: int = 0  # failed idempotent reads, as the client saw them
    write_errors: int = 0  # failed create attempts, before the client's own retry
    lost_writes: int | None = None  # acknowledged creates missing afterwards
    lost_jobs: int | None = None  # accepted jobs that never succeeded
    recovery_seconds: float | None = None
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def require(self, condition: bool, problem: str) -> None:
        if not condition:
            self.problems.append(problem)


HEADERS = (
    "scenario",
    "requests",
    "read errors",
    "create errors (retried)",
    "lost writes",
    "lost jobs",
    "recovery",
    "verdict",
    "notes",
)


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def rows(results: Sequence[Result]) -> list[list[str]]:
    return [
        [
            result.scenario,
            str(result.requests),
            str(result.read_errors),
            str(result.write_errors),
            _count(result.lost_writes),
            _count(result.lost_jobs),
            _seconds(result.recovery_seconds),
            "pass" if result.passed else "FAIL: " + "; ".join(result.problems),
            "; ".join(result.notes),
        ]
        for result in results
    ]


def text_table(results: Sequence[Result]) -> str:
    """Aligned columns for the terminal."""
    return table.aligned(HEADERS, rows(results))


def markdown(results: Sequence[Result]) -> str:
    return table.markdown(HEADERS, rows(results))
