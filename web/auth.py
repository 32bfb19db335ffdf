"""Bearer tokens by role: the admin token for training, cancelling, model management and what
shows other clients' work (the recent jobs, worker names, who corrected what); the predict token
for predictions, polling and model reads when ``PREDICTIONS_NEED_TOKEN`` is set, and for
corrections whenever ``DIGITS_PREDICT_TOKEN`` is; the admin token opens those too. Wrong tokens
are counted per client address in Redis and a client over ``TOKEN_FAILURES_PER_MINUTE`` is
answered 429 until its minute is over; a right token is let through whatever its address sent.
"""

from __future__ import annotations

import functools
import hmac

from flask import request

from jobs import keys
from web.clients import client_address
from web.errors import ApiError
from web.services import services, settings

FAILURE_WINDOW_S = 60
ADMIN_DISABLED = "training and model management are disabled: the server has no DIGITS_ADMIN_TOKEN"
PREDICT_DISABLED = "predictions need a token but the server has none: set DIGITS_PREDICT_TOKEN or DIGITS_ADMIN_TOKEN"


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def check(allowed: tuple[str, ...], role: str, disabled: str) -> None:
    """Let the request through if it carries one of the ``allowed`` tokens (empty ones never match);
    else 401 without a token, 403 with a wrong one (or ``disabled`` when none is configured), 429
    for a client that keeps sending wrong ones."""
    given = bearer_token()
    if not given:
        raise ApiError(
            401,
            "unauthorized",
            f"this needs the {role} token: send 'Authorization: Bearer <token>'",
            {"WWW-Authenticate": 'Bearer realm="digits"'},
        )
    if not any(allowed):
        raise ApiError(403, "forbidden", disabled)
    # The token first: a client that guesses from the admin's address (a shared NAT, a proxy)
    # must not lock the admin out. Guessing gains nothing from this: tokens are long and random.
    if _matches(given, allowed):
        return
    config = settings()
    if _matches(given, (config.admin_token, config.digits_predict_token)):  # a real token, of another role
        raise ApiError(403, "forbidden", f"this needs the {role} token")
    failures_key = keys.token_failures(client_address())
    client = services().redis
    limit = settings().token_failures_per_minute
    if int(client.get(failures_key) or 0) >= limit:
        wait = max(1, client.ttl(failures_key))
        message = f"too many wrong tokens from {client_address()}; retry after {wait} s"
        raise ApiError(429, "too_many_token_failures", message, {"Retry-After": str(wait)})
    # One transaction: the count and its window are made together, so no count is left without expiry.
    pipe = client.pipeline(transaction=True)
    pipe.set(failures_key, 0, ex=FAILURE_WINDOW_S, nx=True)  # the first of this minute starts the window
    pipe.incr(failures_key)
    pipe.execute()
    raise ApiError(403, "forbidden", "the token is not valid")


def _matches(given: str, tokens: tuple[str, ...]) -> bool:
    return any(token and hmac.compare_digest(given.encode(), token.encode()) for token in tokens)


def admin_required(view):
    """Training, cancelling and model management: the admin token."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        check((settings().admin_token,), "admin", ADMIN_DISABLED)
        return view(*args, **kwargs)

    wrapped.__token__ = "admin"  # type: ignore[attr-defined]  # the OpenAPI document's security (web/openapi.py)
    return wrapped


def is_admin() -> bool:
    """Whether the request carries the admin token: it is then shown what is private to others
    (never refused, never counted as a failure: the views that ask this are open)."""
    given = bearer_token()
    return bool(given) and _matches(given, (settings().admin_token,))


def predict_token_if_configured(view):
    """Open by default; with ``PREDICTIONS_NEED_TOKEN``, the predict token (or the admin token)."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        config = settings()
        if config.predictions_need_token:
            check((config.digits_predict_token, config.admin_token), "predict", PREDICT_DISABLED)
        return view(*args, **kwargs)

    wrapped.__token__ = "predict"  # type: ignore[attr-defined]  # when PREDICTIONS_NEED_TOKEN is set
    return wrapped


def predict_token_if_one_exists(view):
    """Corrections: they decide what the next model learns, so once a predict token is configured
    (``DIGITS_PREDICT_TOKEN``) they need it (or the admin token) even where predictions are open."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        config = settings()
        if config.predictions_need_token or config.digits_predict_token:
            check((config.digits_predict_token, config.admin_token), "predict", PREDICT_DISABLED)
        return view(*args, **kwargs)

    wrapped.__token__ = "predict"  # type: ignore[attr-defined]  # when DIGITS_PREDICT_TOKEN is set
    return wrapped
