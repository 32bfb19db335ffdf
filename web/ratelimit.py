"""A per-second ceiling on submissions (``RATE_LIMIT``) per client address, counted in the jobs'
Redis so every gunicorn process and every web host share one budget per client.

Why it is a ceiling and not the protection: what a client can take from others is what it has
outstanding, and that is bounded where the jobs are created (pending jobs and pending bytes per
client, queued bytes in all; jobs/records.py). A client with nothing pending holds nothing, so
its predictions are never rate limited: one that waits for each answer before sending the next
is never refused, however fast it goes. The ceiling catches clients that pile work up faster
than it drains; training jobs always count. Polling is not limited: a long poll holds only a
greenlet, and the number of waits is bounded per process and per client (web/waiting.py).
"""

from __future__ import annotations

import math
import time

from flask import Flask, current_app, request
from flask_limiter import Limiter, RateLimitExceeded
from limits import parse_many

from jobs import keys
from web.clients import client_address
from web.errors import error_response

# The endpoints that create jobs; the HTML form is one too, or it would be a way around the limit.
PREDICTIONS = frozenset({"api.create_predictions", "pages.submit_form"})
SUBMISSIONS = PREDICTIONS | {"api.create_training_job"}


def _exempt() -> bool:
    """Everything but submissions; and predictions from a client with nothing pending, so a client
    that waits for each answer before it sends the next is never refused, however fast it goes."""
    if request.method != "POST" or request.endpoint not in SUBMISSIONS:
        return True
    if request.endpoint in PREDICTIONS:
        return current_app.extensions["digits"].records.pending(client_address()) == 0
    return False


def init_app(app: Flask) -> None:
    """Install the limit unless ``RATE_LIMIT`` is empty; a malformed limit fails here, at start."""
    settings = app.extensions["digits"].settings
    rate_limit = settings.rate_limit.strip()
    if not rate_limit:
        return
    try:
        parse_many(rate_limit)
    except ValueError as exc:
        raise ValueError(f"RATE_LIMIT {rate_limit!r} is not a rate limit such as '50 per second': {exc}") from None
    limiter = Limiter(
        client_address,
        application_limits=[rate_limit],
        application_limits_exempt_when=_exempt,
        # The app's own pool decides where Redis is (a Sentinel URL's primary, too); the URI only
        # picks limits' Redis storage. The pool brings its fail-fast timeouts, and Redis errors
        # surface as the usual 503.
        storage_uri="redis://",
        storage_options={
            "connection_pool": app.extensions["digits"].redis.connection_pool,
            "key_prefix": keys.RATE_LIMIT_PREFIX,
        },
        strategy="fixed-window",
        headers_enabled=False,  # X-RateLimit-* would cost a Redis round trip per request
    )
    limiter.init_app(app)

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(exc: RateLimitExceeded):
        retry_after = _seconds_until_reset(limiter)
        message = (
            f"too many submissions from {client_address()}: the limit is {exc.description}; retry after {retry_after} s"
        )
        return error_response(429, "rate_limited", message, {"Retry-After": str(retry_after)})


def _seconds_until_reset(limiter: Limiter) -> int:
    breached = limiter.current_limit
    if breached is None:
        return 1
    try:
        return max(1, math.ceil(breached.reset_at - time.time()))
    except Exception:  # the window could not be read (Redis just went away): a short, safe guess
        current_app.logger.warning("rate limit window unreadable", exc_info=True)
        return 1
