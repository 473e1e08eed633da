"""JSON log lines that carry the trace they belong to, so logs and traces join up.

Every line has timestamp, level, service, logger and message; inside a trace also
trace_id and span_id, inside an RPC the method as `rpc`; fields passed with `extra=`
follow (the pipeline adds grpc_code, duration_ms and reason). Error text is redacted
(`redaction.redact`): database errors quote row values, and rows hold patient data.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from types import TracebackType

from opentelemetry import trace

from medstation_platform.redaction import redact

_current_rpc: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "medstation_rpc", default=None
)
# Attributes every LogRecord has; anything else was passed through `extra=` on purpose.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def set_current_rpc(method: str | None) -> contextvars.Token[str | None]:
    return _current_rpc.set(method)


def reset_current_rpc(token: contextvars.Token[str | None]) -> None:
    _current_rpc.reset(token)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
            entry["span_id"] = format(span_context.span_id, "016x")
        rpc = _current_rpc.get()
        if rpc:
            entry["rpc"] = rpc
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str) -> None:
    """Every log line of the process as JSON on stdout: ours, libraries', warnings, crashes."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _log_uncaught(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    # Python's default hook prints a plain traceback, the one non-JSON line a crash leaves.
    logging.getLogger("medstation").critical(
        "process failed: %s", kind.__name__, exc_info=(kind, error, traceback)
    )
