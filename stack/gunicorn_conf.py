"""gunicorn settings for the web; use them wherever the web runs under gunicorn:

    gunicorn -c python:stack.gunicorn_conf "web:create_app()" --workers 2 --bind 0.0.0.0:8000

Workers: gevent, with read deadlines (stack/web_worker.py): a waiting request costs a greenlet
and a socket, up to ``WEB_CONNECTIONS`` connections per process.

Metrics: the web's request metrics are summed across gunicorn's worker processes by
prometheus_client's multiprocess mode, which every process must agree on before it first imports
prometheus_client. This module is read by the gunicorn master before it forks, so it sets
``PROMETHEUS_MULTIPROC_DIR`` here (a fresh temporary directory unless the environment names one)
and the workers inherit it. It lives outside the ``web`` package on purpose: importing
``web.anything`` would import prometheus_client in the master before the variable is set.

Shutdown: SIGTERM drains (web/draining.py, stack/web_worker.py): ``DRAIN_SECONDS`` of serving on
with /readyz 503, then every long poll answered; ``graceful_timeout`` leaves room for that and for
the answers in hand, so gunicorn never kills a worker that drains as it should.

Logs: gunicorn's own lines (start, worker exits, timeouts) in ``LOG_FORMAT`` like the app's; its
access log is off because the app writes one line per request with the request id.
"""

from __future__ import annotations

import glob
import logging
import math
import os
import shutil
import sys
import tempfile

_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_made_dir: str | None = None
if not os.environ.get(_VARIABLE):
    _made_dir = tempfile.mkdtemp(prefix="digits-web-metrics-")
    os.environ[_VARIABLE] = _made_dir
METRICS_DIR = os.environ[_VARIABLE]

from settings import get_settings  # noqa: E402  (after the variable is set: settings are read once)


def on_starting(server) -> None:
    """Start from zero: files of an earlier run in a named directory would add its counts to ours."""
    os.makedirs(METRICS_DIR, exist_ok=True)
    for path in glob.glob(os.path.join(METRICS_DIR, "*.db")):
        os.remove(path)


def child_exit(server, worker) -> None:
    """Counters of a dead worker keep counting in the totals; only its live gauges must go."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, METRICS_DIR)


def worker_exit(server, worker) -> None:
    """End a worker's process the moment it has finished, with the status it was exiting with.

    Python's own teardown of a web worker took 2-3 s (in C: no Python frame on a faulthandler
    dump), over 8 s under load: past ``graceful_timeout``, so the master killed drained workers.
    Everything a worker writes is written already (its metrics to their mmapped files); only
    the log handlers are flushed. (gunicorn's master calls this too, for a worker already gone:
    there it does nothing.)"""
    if os.getpid() != worker.pid:
        return
    ending = sys.exc_info()[1]  # gunicorn calls this while the worker's SystemExit is in flight
    status = ending.code if isinstance(ending, SystemExit) and isinstance(ending.code, int) else int(ending is not None)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def on_exit(server) -> None:
    if _made_dir:
        shutil.rmtree(_made_dir, ignore_errors=True)


worker_class = "stack.web_worker.DeadlineGeventWorker"
# The app logs each request itself (web/request_log.py); gunicorn would otherwise format its own
# access line for every request (a logging configuration turns it on) only to drop it.
logger_class = "stack.web_worker.NoAccessLogLogger"
worker_connections = get_settings().web_connections
# Seconds an idle keep-alive connection may wait for its next request: 5, and never more than the
# drain, so that no idle connection is left when the drain closes (each answer during the drain
# closes its connection; one idle since before SIGTERM has timed out by then).
keepalive = max(1, min(5, math.floor(get_settings().drain_seconds)))
graceful_timeout = get_settings().web_graceful_timeout  # the drain, then the answers in hand

# gunicorn 27's control socket ($HOME/.gunicorn/gunicorn.ctl) would be one path shared by every
# gunicorn on the host (tests start several at once) and is not used here: no management socket.
control_socket_disable = True

_formatter = "jobs.logs.TextFormatter" if get_settings().log_format == "text" else "jobs.logs.JsonFormatter"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": []},  # the app installs its own (jobs.logs.configure_logging)
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
    },
    "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "digits"}},
    "formatters": {"digits": {"()": _formatter}},
}
