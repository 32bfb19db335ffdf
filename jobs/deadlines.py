"""Deadlines: how long a prediction may wait for a worker before nobody wants its answer.

A submission may carry a timeout (the job API's ``timeout_ms``, the inference protocol's
``parameters.timeout``; a gRPC server passes its call's remaining deadline the same way). The
service's ``DEFAULT_TIMEOUT_MS`` stands in when none is given and ``MAX_TIMEOUT_MS`` caps any
(0: none). The script that records the jobs turns the timeout into a deadline in Redis's own
clock (``TIME``), and the script a worker starts jobs with compares against the same clock: web
and worker hosts whose clocks disagree cannot expire a job early or late. A job whose deadline has
passed when a worker takes it ends ``expired`` without its image being handed over or read.
"""

from __future__ import annotations

from model.results import ErrorDetail

# The error code of a job that ended expired because of its deadline.
DEADLINE_EXCEEDED = "deadline_exceeded"


def timeout_ms(given: int | None, default_ms: int, max_ms: int) -> int:
    """The timeout a submission's jobs get, in milliseconds (0: none): the one ``given`` (None or
    0: none given, so ``default_ms``), never more than ``max_ms`` (0: no maximum)."""
    chosen = given or default_ms
    if max_ms and (chosen == 0 or chosen > max_ms):
        return max_ms
    return chosen


def exceeded(message: str = "its deadline passed before a worker started it; it was not read") -> ErrorDetail:
    """The error of a job that ended expired."""
    return {"code": DEADLINE_EXCEEDED, "message": message}
