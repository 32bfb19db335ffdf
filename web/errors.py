"""Every error the service gives, in one place: an HTML page for people at the pages, JSON
``{"error": {"code": ..., "message": ...}}`` for the API, and the Open Inference Protocol's own
``{"error": "..."}`` under /v2, with the same 4xx/5xx status."""

from __future__ import annotations

import logging

import kombu.exceptions
import redis
from flask import Flask, Response, current_app, g, jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import ClientDisconnected, HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from jobs.replicas import NotReplicated

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
# Messages may quote what the client sent; a hostile request must not get a megabyte echoed back.
MAX_MESSAGE_CHARS = 500
# Paths whose every answer is JSON, whatever the client accepts.
API_PATHS = ("/api/", "/metrics", "/healthz", "/readyz", "/v2")


class ApiError(Exception):
    """A client mistake (or an unavailable dependency) with its HTTP status and a stable code."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None, images: list | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.images = images  # a submission's refused images, each {index, name, status, code, message}


def wants_page() -> bool:
    """Whether this request should get its error as a page: a browser asking for a page (or for a
    path no route knows), never a program calling the API."""
    if request.path.startswith(API_PATHS):
        return False
    if request.blueprint == "pages":
        return request.accept_mimetypes.accept_html
    if request.blueprint is None:  # no route matched: a page only for a client that prefers one
        return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"
    return False


def error_response(
    status: int, code: str, message: str, headers: dict | None = None, images: list | None = None
) -> Response:
    """The error answer for this request: a page or JSON (see :func:`wants_page`); ``images``: a
    submission's every refused image, each with its own reason (in the JSON, beside the message)."""
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 3] + "..."
    g.error_code = code  # for the request's log line
    if wants_page():
        # A refused form post shows the form again, with the reason above it (it needs the session key).
        form_again = request.endpoint == "pages.submit_form" and current_app.secret_key
        template = "home.html" if form_again else "error.html"
        title = HTTP_STATUS_CODES.get(status, "Error")
        return make_response(
            render_template(template, error=message, status=status, title=title), status, headers or {}
        )
    if request.path == "/v2" or request.path.startswith("/v2/"):  # the protocol's clients read one string
        response = jsonify({"error": f"{message} ({code})"})
    else:
        response = jsonify({"error": {"code": code, "message": message} | ({"images": images} if images else {})})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _too_large_message() -> str:
    """werkzeug raises the same 413 for every body limit; say which one applies."""
    config = current_app.config
    body_limit = config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > body_limit:
        return f"request body is {request.content_length} bytes, over the limit of {body_limit}"
    return (
        f"request body is over a limit: at most {body_limit} bytes in all, {config['MAX_FORM_PARTS']} "
        f"multipart parts, and {config['MAX_FORM_MEMORY_SIZE']} bytes in a form field that is not a file"
    )


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.headers, exc.images)

    @app.errorhandler(CSRFError)
    def _csrf_failed(exc: CSRFError):
        """A form post without a valid token (forged, or from a page older than the session)."""
        hint = " Reload the page and try again." if wants_page() else ""
        return error_response(400, "csrf_failed", f"{exc.description}{hint}")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        message = _too_large_message() if exc.code == 413 else exc.description or exc.name
        headers = {"Allow": ", ".join(exc.valid_methods or [])} if exc.code == 405 else None
        return error_response(exc.code or 500, code, message, headers)

    @app.errorhandler(ClientDisconnected)
    def _body_not_sent(exc: ClientDisconnected):
        """The body did not arrive: too slowly (stack/web_worker.py's deadline), or cut short."""
        if isinstance(exc.__context__, TimeoutError):
            response = error_response(
                408, "request_timeout", str(exc.__context__) or "the request did not arrive in time"
            )
        else:
            response = error_response(400, "incomplete_body", "the request body ended before its Content-Length")
        response.headers["Connection"] = "close"  # what is left of the body cannot be told from a next request
        return response

    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    @app.errorhandler(kombu.exceptions.OperationalError)
    @app.errorhandler(redis.exceptions.OutOfMemoryError)
    def _unavailable(exc: Exception):
        """Redis unreachable, or refusing writes because its memory is full: retry shortly."""
        full = isinstance(exc, redis.exceptions.OutOfMemoryError)
        log.warning("%s %s: Redis %s: %s", request.method, request.path, "is full" if full else "unavailable", exc)
        code, state = ("store_full", "full") if full else ("unavailable", "unreachable")
        return error_response(
            503, code, f"the job store is {state}; retry shortly", {"Retry-After": str(RETRY_AFTER_S)}
        )

    @app.errorhandler(NotReplicated)
    def _not_replicated(exc: NotReplicated):
        """The new jobs reached the primary but no replica (REPLICA_ACK): a failover now would lose
        them, so they are not promised. They may still be read; the client should submit again."""
        log.warning("%s %s: %s", request.method, request.path, exc)
        message = f"{exc}; they are not safe from a failover, so they are not accepted: retry shortly"
        return error_response(503, "not_replicated", message, {"Retry-After": str(RETRY_AFTER_S)})

    @app.errorhandler(Exception)
    def _internal(exc: Exception):
        if isinstance(exc, redis.exceptions.ResponseError) and "OOM command not allowed" in str(exc):
            # Redis 6 reports a script's refused write as a plain script error, not an OOM error.
            return _unavailable(redis.exceptions.OutOfMemoryError(str(exc)))
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal_error", "the server failed to handle this request")
