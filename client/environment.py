"""The admin token from the environment: one name, ``DIGITS_ADMIN_TOKEN``, for the server, the
``digits`` command, ``DigitsClient``, the curl examples and docker compose.

The client's old names, ``DIGITS_TOKEN`` and ``DIGITS_API_TOKEN``, are still read (after the new
one) and say once that they are deprecated.
"""

from __future__ import annotations

import os
import sys

TOKEN_VARIABLE = "DIGITS_ADMIN_TOKEN"
OLD_TOKEN_VARIABLES = ("DIGITS_TOKEN", "DIGITS_API_TOKEN")
_warned: set[str] = set()


def token_from_environment() -> str | None:
    """DIGITS_ADMIN_TOKEN, else an old name (with a deprecation line on stderr, once), else None."""
    if os.environ.get(TOKEN_VARIABLE):
        return os.environ[TOKEN_VARIABLE]
    for name in OLD_TOKEN_VARIABLES:
        if os.environ.get(name):
            if name not in _warned:
                _warned.add(name)
                print(f"note: {name} is deprecated; set {TOKEN_VARIABLE} instead", file=sys.stderr)
            return os.environ[name]
    return None
