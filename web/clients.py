"""Who a request comes from: the address every per-client rule (pending work, waits, token
failures, the rate limit) counts against."""

from __future__ import annotations

from flask import request

UNKNOWN = "unknown"


def client_address() -> str:
    """The client's address (as the trusted proxies in front saw it, with PROXIES set), or "unknown"."""
    return request.remote_addr or UNKNOWN
