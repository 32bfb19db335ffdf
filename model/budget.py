"""A time limit on a piece of work, enforced: the work is interrupted when its time is up.

Reading one image is pure Python and Pillow between calls, so a SIGALRM timer can interrupt it
(Pillow decodes in chunks, returning to Python between them). Signals reach only the main
thread, which is where Celery's solo pool runs its tasks; elsewhere the limit is checked once
the work returns instead.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class OutOfTime(Exception):
    """The work took longer than its limit."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Run the body for at most ``seconds`` (0: no limit); raise :class:`OutOfTime` when it runs over."""
    if seconds <= 0:
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        started = time.monotonic()
        yield
        if time.monotonic() - started > seconds:
            raise OutOfTime(f"took over {seconds * 1000:.0f} ms")
        return

    def out_of_time(signum, frame):
        raise OutOfTime(f"took over {seconds * 1000:.0f} ms")

    previous = signal.signal(signal.SIGALRM, out_of_time)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
