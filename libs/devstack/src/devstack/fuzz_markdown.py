"""The Markdown tables of a fuzzing run, for docs/fuzzing.md.

The results go between two marker comments, so a new run replaces its numbers and keeps the
hand-written text around them.
"""

from __future__ import annotations

import time
from collections import Counter
from importlib import metadata
from typing import TYPE_CHECKING, Any

from devstack.fuzz_report import DEPENDENCY_STATUSES, UNDOCUMENTED, OperationStats

if TYPE_CHECKING:
    from devstack.fuzz import FuzzRun, FuzzSettings

START = "<!-- fuzz-results:start (written by `python -m devstack.fuzz` / `make fuzz`) -->"
END = "<!-- fuzz-results:end -->"
CLASSES = ("public", "read", "write", "other")


def render(runs: list[FuzzRun], settings: FuzzSettings, classes: dict[str, str]) -> str:
    """The results section, markers included; `classes` maps operation labels to classes."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    version = metadata.version("schemathesis")
    lines = [
        START,
        f"Run of {when}: schemathesis {version}, `--max-examples {settings.examples}` per "
        f"operation and phase, phases `{settings.phases}`, seeds "
        + ", ".join(f"{run.identity} `{run.result.seed}`" for run in runs)
        + "; "
        f"{sum(run.cases for run in runs)} requests in "
        f"{sum(run.seconds for run in runs):.0f} s; "
        f"**{sum(run.server_errors for run in runs)} server errors**.",
        "",
        "| account | class | operations | cases | 2xx | 4xx | 503/504 | server errors (5xx) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        for kind in CLASSES:
            chosen = [s for s in run.stats.values() if _class(s.label, classes) == kind]
            lines.append(_totals_row(run.identity, kind, chosen))
    lines += ["", *_operation_table(runs, classes), "", *_failures(runs), END]
    return "\n".join(lines) + "\n"


def _totals_row(identity: str, kind: str, stats: list[OperationStats]) -> str:
    statuses: Counter[int] = Counter()
    for entry in stats:
        statuses.update(entry.statuses)
    cells = [
        identity,
        kind,
        str(len(stats)),
        str(sum(entry.cases for entry in stats)),
        str(_band(statuses, 200)),
        str(_band(statuses, 400)),
        str(sum(statuses[status] for status in DEPENDENCY_STATUSES)),
        str(sum(entry.server_error_count for entry in stats)),
    ]
    return "| " + " | ".join(cells) + " |"


def _band(statuses: Counter[int], low: int) -> int:
    return sum(n for status, n in statuses.items() if low <= status < low + 100)


def _class(label: str, classes: dict[str, str]) -> str:
    return classes.get(label, "other") if label != UNDOCUMENTED else "other"


def _operation_table(runs: list[FuzzRun], classes: dict[str, str]) -> list[str]:
    labels = sorted({label for run in runs for label in run.stats}, key=_path_first)
    header = " | ".join(f"{run.identity}: cases, statuses" for run in runs)
    lines = [
        f"| operation | class | {header} | server errors |",
        "|---|---|" + "---|" * len(runs) + "---:|",
    ]
    for label in labels:
        cells = []
        errors = 0
        for run in runs:
            entry = run.stats.get(label)
            cells.append(f"{entry.cases}: {_statuses(entry.statuses)}" if entry else "-")
            errors += entry.server_error_count if entry else 0
        kind = _class(label, classes)
        lines.append(f"| `{label}` | {kind} | " + " | ".join(cells) + f" | {errors} |")
    return lines


def _path_first(label: str) -> tuple[str, str]:
    method, _, path = label.partition(" ")
    return path, method


def _statuses(statuses: Counter[int]) -> str:
    return ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))


def _failures(runs: list[FuzzRun]) -> list[str]:
    lines: list[str] = []
    for run in runs:
        for entry in run.stats.values():
            for title, samples in (
                ("server error", entry.server_errors),
                ("503/504", entry.unavailable),
            ):
                lines += [_sample(run.identity, entry.label, title, sample) for sample in samples]
    errors = [f"- {run.identity}: {error}" for run in runs for error in run.result.errors]
    if errors:
        lines += ["", "Schemathesis errors:", "", *errors]
    if not lines:
        return ["No 5xx answer of any kind, and no schemathesis error."]
    return ["Samples of 5xx answers (request, then response):", "", *lines, ""]


def _sample(identity: str, label: str, title: str, sample: Any) -> str:
    return (
        f"- {title}, {identity}, `{label}`: `{sample.method} {sample.uri}` body "
        f"`{sample.request_body[:200]}` → {sample.status} `{sample.response_body[:200]}`"
    )


def replace_section(document: str, section: str) -> str:
    """`document` with its results section replaced by `section` (appended when absent)."""
    start, end = document.find(START), document.find(END)
    if start < 0 or end < start:
        return document.rstrip("\n") + "\n\n" + section
    return document[:start] + section + document[end + len(END) + 1 :]
