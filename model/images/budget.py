"""A time limit on a piece of work, enforced: the work is interrupted when its time is up.

Reading one image is Python, numpy and Pillow between calls, so it can be interrupted between two
of them: on the main thread by a SIGALRM timer, on any other thread (a predict worker reads on its
lane-consumer thread, where signals never arrive) by a watchdog thread that raises the exception
in it. Either way a single long call into C (one inflate, one resize) finishes first; the pixel
and byte limits bound those, and the limit is checked again when the work returns.
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext


class OutOfTime(BaseException):
    """The work took longer than its limit. A BaseException, so that no ``except Exception`` in
    the work it interrupts can swallow it."""


def time_limit(seconds: float) -> AbstractContextManager[None]:
    """Run the body for at most ``seconds`` (0: no limit); raise :class:`OutOfTime` when it runs over."""
    if seconds <= 0:
        return nullcontext()
    if threading.current_thread() is threading.main_thread():
        return _alarm(seconds, _message(seconds))
    return _Limit(seconds)


def _message(seconds: float) -> str:
    return f"took over {seconds * 1000:.0f} ms"


class _Limit:
    """A limit off the main thread, kept by the watchdog (a class, not a generator: it is entered
    for every image a worker reads, and this costs half as much)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __enter__(self) -> None:
        self.started = time.monotonic()
        _WATCHDOG.arm(self.seconds)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, trace: object) -> None:
        _WATCHDOG.disarm()
        if kind is not None and issubclass(kind, OutOfTime):
            raise OutOfTime(_message(self.seconds)) from None
        # A long call into C ran past the limit uninterrupted.
        if kind is None and time.monotonic() - self.started > self.seconds:
            raise OutOfTime(_message(self.seconds))


@contextmanager
def _alarm(seconds: float, message: str) -> Iterator[None]:
    def out_of_time(signum, frame):
        raise OutOfTime(message)

    previous = signal.signal(signal.SIGALRM, out_of_time)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Watchdog:
    """One daemon thread per process that raises :class:`OutOfTime` in threads past their deadline.

    Arming and disarming only write a dict under a lock (no wake-up per image); the thread looks
    every ``TICK`` seconds, so a limit is enforced within a tick of its end.
    """

    TICK = 0.02

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deadlines: dict[int, float] = {}  # thread id -> monotonic deadline
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float) -> None:
        with self._lock:
            self._deadlines[threading.get_ident()] = time.monotonic() + seconds
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="time-limit-watchdog", daemon=True)
                self._thread.start()

    def disarm(self) -> None:
        """End this thread's limit. If it has fired and not yet been raised, it is withdrawn: once
        this returns, nothing arrives from this limit."""
        ident = threading.get_ident()
        with self._lock:
            if self._deadlines.pop(ident, None) is None:
                _raise_in(ident, None)

    def _watch(self) -> None:
        while True:
            time.sleep(self.TICK)
            now = time.monotonic()
            with self._lock:
                for ident in [i for i, deadline in self._deadlines.items() if deadline <= now]:
                    del self._deadlines[ident]
                    _raise_in(ident, OutOfTime)


def _raise_in(ident: int, exception: type[BaseException] | None) -> None:
    """Raise ``exception`` in thread ``ident`` at its next Python instruction (None withdraws one
    not raised yet)."""
    pending = None if exception is None else ctypes.py_object(exception)  # None: a NULL pointer
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), pending)


_WATCHDOG = _Watchdog()
