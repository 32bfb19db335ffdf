"""The worker's log lines: Celery's and ours alike, one JSON object per line (``LOG_FORMAT=text``
for people), each naming the process that wrote it as the worker registry does (hostname:pid)."""

from __future__ import annotations

import logging
import os

from celery import signals

from jobs.logs import configure_logging

_hostname = ""  # the worker's --hostname (e.g. predict1@host), known before any pool process forks


class _WorkerName(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = f"{_hostname}:{os.getpid()}"
        return True


@signals.celeryd_init.connect
def _remember_hostname(sender: str, **_) -> None:
    """Sent once, first thing when a worker is made: before its logging is set up."""
    global _hostname
    _hostname = sender


@signals.setup_logging.connect
def _structured_logs(**_) -> None:
    """Replaces Celery's logging set-up with ours (connecting to this signal is how one does)."""
    configure_logging(context=_WorkerName())
