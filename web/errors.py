"""Every error the API gives is JSON: ``{"error": {"code": ..., "message": ...}}`` with a 4xx/5xx status."""

from __future__ import annotations

import logging

import kombu.exceptions
import redis
from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5


class ApiError(Exception):
    """A client mistake (or an unavailable dependency) with its HTTP status and a stable code."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, headers: dict | None = None):
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    response.headers.update(headers or {})
    g.error_code = code  # for the request's log line
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        messages = {413: f"request body is over the limit of {app.config['MAX_CONTENT_LENGTH']} bytes"}
        response = error_response(exc.code or 500, code, messages.get(exc.code, exc.description or exc.name))
        if exc.code == 405:
            response.headers["Allow"] = ", ".join(exc.valid_methods or [])
        return response

    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    @app.errorhandler(kombu.exceptions.OperationalError)
    def _unavailable(exc: Exception):
        log.warning("%s %s: Redis unavailable: %s", request.method, request.path, exc)
        return error_response(
            503, "unavailable", "the job store is unreachable; retry shortly", {"Retry-After": str(RETRY_AFTER_S)}
        )

    @app.errorhandler(Exception)
    def _internal(exc: Exception):
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal_error", "the server failed to handle this request")
