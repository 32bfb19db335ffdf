"""gunicorn settings for the web; use them wherever the web runs under gunicorn:

    gunicorn -c python:stack.gunicorn_conf "web:create_app()" --workers 2 -k gthread --threads 16

Logs: gunicorn's own lines (start, worker exits, timeouts) in ``LOG_FORMAT`` like the app's; its
access log is off because the app writes one line per request with the request id.
"""

from __future__ import annotations

import os

_formatter = (
    "jobs.logs.TextFormatter" if os.environ.get("LOG_FORMAT", "json").lower() == "text" else "jobs.logs.JsonFormatter"
)
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
