"""The web's gunicorn worker: gevent, so a waiting request costs a greenlet and a socket, not a
thread; read deadlines, so a client that trickles its request cannot hold a connection; and a
drain at SIGTERM, so a process goes away without refusing or cutting anyone.

Why gevent: the web spends its time waiting (on Redis, and in long polls that may last
``MAX_WAIT_SECONDS``), and gunicorn's gevent worker turns every wait into a cooperative switch
once the standard library is patched, so the Flask app, redis-py, kombu and the job waiter run
unchanged. Thousands of idle connections cost a few kilobytes each, where gthread gave each one
of a few dozen threads.

Read deadline (as Apache's mod_reqtimeout does it): a request's headers and body must arrive
within ``REQUEST_READ_TIMEOUT`` seconds of waiting for the client, extended by one second for
every :data:`MIN_RATE` bytes received, so a large upload over a slow line passes and a request
sent a byte at a time does not. Writing the answer starts the next request's allowance.

Drain (web/draining.py): gunicorn's SIGTERM would stop accepting at once. Here it begins the
app's drain (/readyz 503), serves on for ``DRAIN_SECONDS`` with every answer closing its
connection, then closes the drain (every long poll answered as it stands) and only then lets
gunicorn stop accepting and finish. A second SIGTERM (gunicorn's master forwards the one it got)
changes nothing; SIGINT and SIGQUIT still stop at once.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import gevent
from gunicorn import glogging
from gunicorn.http.errors import NoMoreData
from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker

from settings import get_settings

if TYPE_CHECKING:
    from web import draining

log = logging.getLogger("web.draining")
MIN_RATE = 64 * 1024  # bytes per second a client must average beyond its first allowance


class ClientTooSlow(NoMoreData, TimeoutError):
    """The client took longer than its allowance to send its request. To gunicorn it is a client
    that went away (closed quietly while it reads headers); to the app a TimeoutError (a 408)."""

    def __str__(self) -> str:
        return str(self.buf)


class DeadlineSocket:
    """A client connection whose reads of one request may wait ``allowance`` seconds in all
    (plus one second per :data:`MIN_RATE` bytes read); anything else goes to the socket."""

    def __init__(self, sock, allowance: float):
        self._sock, self._allowance = sock, allowance
        self._waited, self._received = 0.0, 0

    def recv(self, size: int, *flags) -> bytes:
        left = self._allowance + self._received / MIN_RATE - self._waited
        if left <= 0:
            raise ClientTooSlow(f"the request did not arrive within {self._allowance:.0f} s")
        self._sock.settimeout(left)
        started = time.monotonic()
        try:
            data = self._sock.recv(size, *flags)
        except TimeoutError:
            raise ClientTooSlow(f"the request did not arrive within {self._allowance:.0f} s") from None
        finally:
            self._waited += time.monotonic() - started
        self._received += len(data)
        return data

    def sendall(self, data, *flags) -> None:
        # The answer is being written: the next request on this connection starts afresh.
        self._waited, self._received = 0.0, 0
        self._sock.settimeout(self._allowance)  # a client that stops reading is dropped too
        self._sock.sendall(data, *flags)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class DeadlineGeventWorker(GeventWorker):
    """gunicorn's gevent worker, each connection wrapped in a :class:`DeadlineSocket`, draining at SIGTERM."""

    drain: draining.Drain | None = None

    def handle(self, listener, client, addr) -> None:
        client.setblocking(1)
        AsyncWorker.handle(self, listener, DeadlineSocket(client, get_settings().request_read_timeout), addr)

    def handle_request(self, listener_name, req, sock, addr):
        if self.drain is not None:
            req.must_close = True  # "Connection: close": the client's next request opens a new connection
        return super().handle_request(listener_name, req, sock, addr)

    def handle_exit(self, sig, frame) -> None:
        """SIGTERM: begin the drain; gunicorn stops this worker when it is closed."""
        if self.drain is not None:
            return
        # Imported here, in the worker: the master loads this module before gevent patches anything,
        # and the web package imports redis (whose asyncio half imports ssl unpatched).
        from web import draining

        self.drain = draining.of(self.wsgi) or draining.Drain()
        self.drain.begin(quietly=True)  # /readyz says 503 from the next request on
        # The rest out of the signal handler (as gunicorn's gevent worker does for SIGQUIT): it logs, which may block.
        gevent.spawn(self._drain, self.drain)

    def _drain(self, drain: draining.Drain) -> None:
        log.info("draining: /readyz answers 503 from now on")
        gevent.sleep(get_settings().drain_seconds)
        drain.close()
        self.alive = False  # gunicorn's loop stops accepting and waits for the answers in hand


class NoAccessLogLogger(glogging.Logger):
    """gunicorn's logger without its access log: the app writes one line per request already."""

    def _compute_access_log_enabled(self) -> bool:
        return False
