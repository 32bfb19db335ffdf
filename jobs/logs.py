"""Log lines for machines or for people: one JSON object per line, or plain text (``LOG_FORMAT``).

Shared by the web and (when its owner switches) the workers, so both write the same fields:

    {"timestamp": "2026-11-26T10:42:32.477Z", "level": "INFO", "logger": "web.access",
     "message": "POST /api/v1/predictions 202", "batch_id": "...", "job_ids": ["...", "..."],
     "request_id": "...", "status": 202, "duration_ms": 2.1, ...}

Context fields are passed with ``extra={...}``; only the names in :data:`CONTEXT_FIELDS` are
written, so a stray attribute never leaks into the output.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

from settings import Settings, get_settings

# Fields a log call may add with extra={...}; written in this order after the message.
CONTEXT_FIELDS = (
    "job_id",
    "job_ids",
    "batch_id",
    "request_id",
    "method",
    "path",
    "endpoint",
    "status",
    "error",
    "duration_ms",
    "client",
    "worker",
    "trace_id",  # while a span is current, with tracing on (jobs/tracing.py)
    "span_id",
)
FORMATS = Settings.variables()["LOG_FORMAT"].metadata["choices"]
_HANDLER_MARK = "_digits_handler"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (UTC, ms), level, logger, message, then context fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "timestamp": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_context(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``timestamp LEVEL logger: message key=value ...`` for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{name}={_short(value)}" for name, value in _context(record).items())
        message = _short(record.getMessage())
        line = f"{_timestamp(record.created)} {record.levelname:<7} {record.name}: {message}"
        line = f"{line} {context}" if context else line
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for ``json`` or ``text``; anything else is a configuration mistake."""
    if log_format not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {FORMATS}, not {log_format!r}")
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure_logging(
    log_format: str | None = None, level: str | None = None, context: logging.Filter | None = None
) -> None:
    """Send the root logger's records to stderr in ``log_format`` at ``level`` (default: the
    ``LOG_FORMAT`` and ``LOG_LEVEL`` settings). ``context`` may add fields to every record (the web
    adds the request's). Safe to call again: it replaces the handler it installed before."""
    settings = get_settings()
    log_format = (log_format or settings.log_format).lower()
    level = (level or settings.log_level).upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    if context is not None:
        handler.addFilter(context)
    setattr(handler, _HANDLER_MARK, True)
    # Nothing written names a source line, thread or process name: skip finding them for every
    # record (the logging module's own advice for hot paths).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def _context(record: logging.LogRecord) -> dict:
    return {name: getattr(record, name) for name in CONTEXT_FIELDS if getattr(record, name, None) is not None}


def _timestamp(created: float) -> str:
    moment = dt.datetime.fromtimestamp(created, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _short(value: object) -> str:
    """One line: lists joined by commas, line breaks escaped (a hostile path cannot forge a line)."""
    text = ",".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
    return text.replace("\n", "\\n").replace("\r", "\\r")
