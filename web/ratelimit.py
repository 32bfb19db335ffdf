"""A per-second ceiling on submissions (``RATE_LIMIT``) per client address, counted in the jobs'
Redis so every gunicorn process and every web host share one budget per client.

Why it is a ceiling and not the protection: what a client can take from others is what it has
outstanding, and that is bounded where the jobs are created (pending jobs and pending bytes per
client, queued bytes in all; jobs/records.py). A client with nothing pending holds nothing, so
its predictions are never rate limited: one that waits for each answer before sending the next
is never refused, however fast it goes. The ceiling catches clients that pile work up faster
than it drains; training jobs always count. Polling is not limited: a long poll holds only a
greenlet, and the number of waits is bounded per process and per client (web/waiting.py).

The counting is the ``limits`` library's fixed window (the limit string's syntax is its own), checked
before the request's body is read. Only submissions are looked at: every other request passes
without a Redis command or any work here (flask-limiter, which this replaces, spent about 0.25 ms
of the web's CPU on each request of any kind, polls included).
"""

from __future__ import annotations

import math
import time

from flask import Flask, current_app, request
from limits import RateLimitItem, parse_many
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter

from jobs import keys
from web.clients import client_address
from web.errors import ApiError

# The endpoints that create jobs; the HTML form is one too, or it would be a way around the limit.
PREDICTIONS = frozenset({"api.create_predictions", "pages.submit_form"})
SUBMISSIONS = PREDICTIONS | {"api.create_training_job"}
SCOPE = "submissions"  # one budget per client for every kind of submission


class SubmissionLimit:
    """``RATE_LIMIT`` for one app: each of its limits counted per client address in Redis."""

    def __init__(self, app: Flask, limits: list[RateLimitItem]):
        # The app's own pool decides where Redis is (a Sentinel URL's primary, too) and brings its
        # fail-fast timeouts; Redis errors surface as the usual 503.
        pool = app.extensions["digits"].redis.connection_pool
        storage = RedisStorage("redis://", connection_pool=pool, key_prefix=keys.RATE_LIMIT_PREFIX)
        self._window = FixedWindowRateLimiter(storage)
        self._limits = limits

    def check(self) -> None:
        """Count this request if it is a submission that counts; raise the 429 when it is one too many."""
        if request.method != "POST" or request.endpoint not in SUBMISSIONS:
            return
        client = client_address()
        if request.endpoint in PREDICTIONS and not current_app.extensions["digits"].records.pending(client):
            return
        for limit in self._limits:
            if not self._window.hit(limit, SCOPE, client):
                reset_at = self._window.get_window_stats(limit, SCOPE, client).reset_time
                retry_after = max(1, math.ceil(reset_at - time.time()))
                message = f"too many submissions from {client}: the limit is {limit}; retry after {retry_after} s"
                raise ApiError(429, "rate_limited", message, {"Retry-After": str(retry_after)})


def init_app(app: Flask) -> None:
    """Install the limit unless ``RATE_LIMIT`` is empty; a malformed limit fails here, at start."""
    rate_limit = app.extensions["digits"].settings.rate_limit.strip()
    if not rate_limit:
        return
    try:
        limits = parse_many(rate_limit)
    except ValueError as exc:
        raise ValueError(f"RATE_LIMIT {rate_limit!r} is not a rate limit such as '50 per second': {exc}") from None
    app.before_request(SubmissionLimit(app, limits).check)
