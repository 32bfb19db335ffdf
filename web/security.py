"""Browser-facing protection: security headers on every response and CSRF tokens on HTML forms.

The JSON API is not cookie-authenticated (training and model management use a bearer token,
predictions need nothing), so a forged cross-site request gains nothing there and the API
blueprints are exempt from CSRF. The HTML forms are protected by Flask-WTF's CSRFProtect: a
token bound to the signed session cookie.

Sessions are signed with ``SECRET_KEY``. When it is unset, the first web process to need a key
makes one up and stores it in Redis (``keys.WEB_SECRET_KEY``, SET NX), so every process behind
the load balancer signs and checks with the same key.
"""

from __future__ import annotations

import logging
import secrets

import redis
from flask import Flask, Request, current_app
from flask import request as flask_request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from jobs import keys
from web.errors import ApiError

log = logging.getLogger(__name__)

# No inline scripts or styles anywhere: pages load /static files only, images may be data: or blob: URLs.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data: blob:",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

# Requests under these paths never use the session, so they never wait on Redis for the key.
SESSIONLESS_PATHS = ("/api/", "/v2/", "/static/", "/healthz", "/readyz")

csrf = CSRFProtect()


def shared_secret_key(client: redis.Redis) -> str:
    """The key every web process uses: the stored one, or a new one stored first-come-first-served."""
    client.set(keys.WEB_SECRET_KEY, secrets.token_hex(32), nx=True)
    return client.get(keys.WEB_SECRET_KEY).decode()


class SharedKeySessionInterface(SecureCookieSessionInterface):
    """Cookie sessions that fetch the shared key from Redis on first use (not at start-up, so the
    web starts and answers health checks while Redis is still coming up)."""

    def open_session(self, app: Flask, request: Request):
        if request.path.startswith(SESSIONLESS_PATHS):
            # No cookie to read: a null session, without building a signing serializer per request.
            return self.make_null_session(app)
        if not app.secret_key:
            try:
                app.secret_key = shared_secret_key(app.extensions["digits"].redis)
            except redis.RedisError as exc:
                log.warning("no session key yet, Redis unavailable: %s", exc)
                return None  # a null session; require_secret_key() answers 503 for pages
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure whenever the request came over HTTPS (directly, or through a proxy that says so
        in X-Forwarded-Proto from an address gunicorn trusts), or when configured."""
        return flask_request.is_secure or super().get_cookie_secure(app)


def require_secret_key() -> None:
    """For views that render or check CSRF tokens: without a key they cannot work."""
    if not current_app.secret_key:
        raise ApiError(503, "unavailable", "the session key is not available yet; retry shortly", {"Retry-After": "5"})


def init_app(app: Flask, exempt_blueprints=()) -> None:
    """Headers on every response; CSRF on every form post except in ``exempt_blueprints``."""
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    # The token lives as long as the browser session: a form left open for hours still submits.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    app.session_interface = SharedKeySessionInterface()
    csrf.init_app(app)
    for blueprint in exempt_blueprints:
        csrf.exempt(blueprint)

    @app.after_request
    def _security_headers(response):
        present = {name.lower() for name, _ in response.headers}  # a view may set a stricter policy of its own
        response.headers.extend([(name, value) for name, value in HEADERS.items() if name.lower() not in present])
        return response
