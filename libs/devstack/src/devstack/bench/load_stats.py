"""What one measured run of a load generator produced, whichever generator it was."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LoadStats:
    """Requests sent over `seconds`: `ok` succeeded, `errors` failed (status or socket)."""

    requests: int
    ok: int
    errors: int
    seconds: float
    p50_seconds: float | None
    p99_seconds: float | None
    # Why requests failed: gRPC status names, or "non-2xx", "socket timeout", ...
    error_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def ok_per_second(self) -> float:
        # Successes only: a rate limiter's fast 429s must not read as throughput.
        return self.ok / self.seconds if self.seconds > 0 else 0.0
