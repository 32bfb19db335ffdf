"""Request ids and one log line per request, with the request's id, method and path on every line
logged while it is handled (``LOG_FORMAT``, see jobs/logs.py)."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, has_request_context, request

from jobs.logs import configure_logging
from web.clients import client_address

access_log = logging.getLogger("web.access")

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's own id is kept if it is short and plain; anything else is replaced, never echoed.
_GOOD_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
PATH_LOGGED_CHARS = 256


class RequestContext(logging.Filter):
    """Adds request_id, method and path to records logged inside a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            record.request_id = getattr(record, "request_id", None) or g.get("request_id")
            record.method = getattr(record, "method", None) or request.method
            record.path = getattr(record, "path", None) or request.path[:PATH_LOGGED_CHARS]
        return True


def init_app(app: Flask) -> None:
    settings = app.extensions["digits"].settings
    configure_logging(settings.log_format, settings.log_level, context=RequestContext())

    @app.before_request
    def _start() -> None:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = given if _GOOD_REQUEST_ID.match(given) else uuid.uuid4().hex
        g.log_started = time.perf_counter()

    @app.after_request
    def _log(response: Response) -> Response:
        request_id = g.get("request_id") or uuid.uuid4().hex  # a request that failed before _start
        response.headers[REQUEST_ID_HEADER] = request_id
        started = g.get("log_started")
        access_log.info(
            "%s %s %d",
            request.method,
            request.path[:PATH_LOGGED_CHARS],
            response.status_code,
            extra={
                "request_id": request_id,
                "endpoint": request.url_rule.rule if request.url_rule else None,
                "status": response.status_code,
                "error": g.get("error_code"),
                "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
                "client": client_address(),
                "batch_id": g.get("batch_id"),
                "job_ids": g.get("job_ids"),
            },
        )
        return response
