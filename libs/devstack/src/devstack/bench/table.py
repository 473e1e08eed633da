"""Tables for the terminal and for markdown, and the number formats both use."""

from __future__ import annotations

from collections.abc import Sequence

MISSING = "-"  # no value: nothing completed, or the counter was not readable


def number(value: float | None, decimals: int) -> str:
    return MISSING if value is None else f"{value:,.{decimals}f}"


def percent(share: float | None) -> str:
    """0.123 as 12.3%: one decimal, so a few misses among many hits still show."""
    return MISSING if share is None else f"{share:.1%}"


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table: the first column left-aligned, the numbers right-aligned."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(["---"] + ["--:"] * (len(headers) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def aligned(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, for a terminal."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)
