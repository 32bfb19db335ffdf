"""Draining: how a web process leaves without dropping a request.

gunicorn's own SIGTERM stops accepting at once and holds a long poll until its wait runs out, so
a load balancer that still believes the process ready sends it requests it refuses, and a wait
longer than ``graceful_timeout`` is cut. Here SIGTERM begins a drain instead (the gunicorn worker,
stack/web_worker.py, calls :meth:`Drain.begin`):

1. At once: ``/readyz`` (and ``/v2/health/ready``) answer 503 ``draining``, so load balancers
   stop sending; requests are served as before, each answer closing its connection, so a client's
   next request opens a new one (to another process).
2. ``DRAIN_SECONDS`` later, once the load balancers have seen the 503: :meth:`Drain.close`
   answers every open long poll with its record as it stands (a client polls again elsewhere),
   and no request waits any more; gunicorn then stops accepting and the process exits as soon as
   the answers are written, well within its ``graceful_timeout`` (stack/gunicorn_conf.py).

The gRPC server (web/grpc_server.py, a process of its own) drains its app's drain
(``draining.of(app)``) the same way: its SIGTERM handler calls :meth:`Drain.begin`, so ServerReady
(web/dataplane.py asks :attr:`Drain.draining`) and its health service (web/grpc_health.py) say no
at once, and :meth:`Drain.close` ``DRAIN_SECONDS`` later, which ends its waits, before the
server's own grace.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from flask import Flask

log = logging.getLogger(__name__)


class Drain:
    """One web process's drain: begun by SIGTERM, closed ``DRAIN_SECONDS`` later."""

    def __init__(self) -> None:
        self.began: float | None = None  # time.monotonic() at SIGTERM
        self._closers: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    @property
    def draining(self) -> bool:
        """Whether this process is going away (readiness says no)."""
        return self.began is not None

    def begin(self, quietly: bool = False) -> None:
        """Say not ready from now on; requests are still served. ``quietly``: without a log line
        (from a signal handler, where logging could block)."""
        if self.began is None:
            self.began = time.monotonic()
            if not quietly:
                log.info("draining: /readyz answers 503 from now on")

    def on_close(self, closer: Callable[[], None]) -> None:
        """Call ``closer`` when the drain closes: it answers whatever this process holds waiting."""
        with self._lock:
            self._closers.append(closer)

    def close(self) -> None:
        """Answer every request held waiting, now and from now on."""
        self.begin()
        with self._lock:
            closers = list(self._closers)
        for closer in closers:
            closer()
        log.info("drained: the open long polls are answered; the process exits once they are written")


def init_app(app: Flask) -> Drain:
    drain = app.extensions["digits.drain"] = Drain()
    return drain


def of(app: Flask) -> Drain | None:
    """The app's drain (None for an app this module did not set up)."""
    return getattr(app, "extensions", {}).get("digits.drain")
