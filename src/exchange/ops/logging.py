"""JSON-lines logging with the request's correlation id on every line.

Only fields passed explicitly through ``extra=`` with names from ``_ALLOWED`` reach the
output, so a careless ``logger.info("...", extra={"body": ...})`` cannot leak a body.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import IO, Any

import msgspec

__all__ = ("bind_correlation_id", "configure_logging", "correlation_id_var", "JsonFormatter")

correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)

# Structured fields a log line may carry. Deliberately no body, payload or patient field.
_ALLOWED = frozenset(
    {
        "method", "route", "status", "latency_ms", "client_id", "record_id", "event_id",
        "topic", "partition", "offset", "error_type", "stage", "attempt", "task", "state",
        "count", "backlog", "delay_s", "role", "roles", "job_id", "source", "host", "port",
        "component", "dependency", "duration_ms", "reason",
    }
)
_encoder = msgspec.json.Encoder()


def bind_correlation_id(value: str | None) -> contextvars.Token[str | None]:
    return correlation_id_var.set(value)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        cid = getattr(record, "correlation_id", None) or correlation_id_var.get()
        if cid:
            entry["correlation_id"] = cid
        fields = record.__dict__
        for key in _ALLOWED.intersection(fields):
            value = fields[key]
            if value is not None:
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type only: messages and tracebacks can quote data.
            entry["exc_type"] = record.exc_info[0].__name__
        return _encoder.encode(entry).decode()


def configure_logging(level: str, stream: IO[str] | None = None) -> None:
    # The JSON lines carry none of the caller's file and line, thread or process: skip
    # collecting them for every record (the logging HOWTO's "Optimization"), which makes
    # every log line, the access log's among them, measurably cheaper (docs/performance.md).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party loggers that may print request data or credentials stay quiet.
    # httpx logs every request at INFO: a remote tokenizer call a record.
    for noisy in ("uvicorn.access", "botocore", "aiobotocore", "urllib3", "asyncio", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").setLevel(level)
