"""Bearer-token guard for training and model management (``DIGITS_API_TOKEN``), and for
predictions and polling too when ``PREDICTIONS_NEED_TOKEN`` is set."""

from __future__ import annotations

import functools
import hmac

from flask import request

from web.errors import ApiError
from web.services import settings


def check_token(given: str | None) -> None:
    """Raise 401 without a token, 403 with a wrong one (or when the server has none configured)."""
    expected = settings().digits_api_token
    if not given:
        raise ApiError(
            401,
            "unauthorized",
            "this needs a token: send 'Authorization: Bearer <token>'",
            {"WWW-Authenticate": 'Bearer realm="digits"'},
        )
    if not expected:
        raise ApiError(
            403, "forbidden", "training and model management are disabled: the server has no DIGITS_API_TOKEN"
        )
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(403, "forbidden", "the token is not valid")


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def token_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        check_token(bearer_token())
        return view(*args, **kwargs)

    return wrapped


def token_required_if_configured(view):
    """Open by default; guarded like training when ``PREDICTIONS_NEED_TOKEN`` is true."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if settings().predictions_need_token:
            check_token(bearer_token())
        return view(*args, **kwargs)

    return wrapped
