"""A one-line progress bar on stderr: count/total, rate, ETA, redrawn in place with \\r.

Small on purpose (tqdm is not a dependency). On a terminal it redraws at most ten times a
second; into a file or CI log it writes a plain line every few seconds instead, since
carriage returns there pile up into one unreadable line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

_BAR_WIDTH = 24
_TTY_INTERVAL_SECONDS = 0.1
_LOG_INTERVAL_SECONDS = 5.0


class ProgressBar:
    """Counts towards `total`; call `advance()` per item and `close()` once at the end."""

    def __init__(
        self,
        label: str,
        total: int,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._label = label
        self._total = max(total, 0)
        self._stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self._started = clock()
        self._count = 0
        self._last_draw = float("-inf")
        self._interactive = self._stream.isatty()

    @property
    def count(self) -> int:
        return self._count

    def advance(self, amount: int = 1) -> None:
        self._count += amount
        now = self._clock()
        interval = _TTY_INTERVAL_SECONDS if self._interactive else _LOG_INTERVAL_SECONDS
        if now - self._last_draw >= interval:
            self._draw(now)

    def close(self) -> None:
        """Draw the final state and end the line."""
        self._draw(self._clock())
        if self._interactive:
            self._stream.write("\n")
        self._stream.flush()

    def line(self, now: float | None = None) -> str:
        """The text of the bar at `now` (default: the clock's now)."""
        elapsed = (self._clock() if now is None else now) - self._started
        rate = self._count / elapsed if elapsed > 0 else 0.0
        done = min(self._count / self._total, 1.0) if self._total else 1.0
        filled = round(done * _BAR_WIDTH)
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        remaining = max(self._total - self._count, 0)
        eta = _clock_text(remaining / rate) if rate > 0 else "--:--"
        return (
            f"{self._label} [{bar}] {self._count}/{self._total} {done:6.1%} "
            f"{rate:7.1f}/s  elapsed {_clock_text(elapsed)}  ETA {eta}"
        )

    def _draw(self, now: float) -> None:
        self._last_draw = now
        if self._interactive:
            self._stream.write("\r" + self.line(now) + "\x1b[K")  # \x1b[K: clear the rest
        else:
            self._stream.write(self.line(now) + "\n")
        self._stream.flush()


def _clock_text(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
