"""Answers to ``GET /api/v1/batches/<id>`` for batches whose every job has ended, kept a few seconds
in this web process.

An ended job's record no longer changes, so neither does the answer about a finished batch: a client
(or 500) polling a finished 1,000-job batch again and again would otherwise cost 1,000 records read
from Redis and serialised per request. Kept answers are bounded in bytes (the oldest go first) and in
time: a record that expires or is purged shows as expired at most ``KEEP_S`` seconds late.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

# At most this many bytes of answers per web process; one 1,000-job batch's answer is about 1 MB.
MAX_BYTES = 32 * 1024 * 1024
# An answer is served from here for at most this long after it was made.
KEEP_S = 10.0


class FinishedBatches:
    """Serialised answers about finished batches, by (batch id, whether the asker is the admin)."""

    def __init__(self, max_bytes: int = MAX_BYTES, keep_s: float = KEEP_S, clock: Callable[[], float] = time.monotonic):
        self.max_bytes, self.keep_s, self.clock = max_bytes, keep_s, clock
        self._answers: OrderedDict[tuple[str, bool], tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, batch_id: str, admin: bool) -> bytes | None:
        """The answer kept for the batch, or None (never kept, or kept too long ago)."""
        key = (batch_id, admin)
        with self._lock:
            kept = self._answers.get(key)
            if kept is None:
                return None
            made, body = kept
            if self.clock() - made > self.keep_s:
                self._drop(key)
                return None
            self._answers.move_to_end(key)
            return body

    def keep(self, batch_id: str, admin: bool, body: bytes) -> None:
        """Keep the answer about a batch whose every job has ended; one larger than the whole
        room is not kept."""
        if len(body) > self.max_bytes:
            return
        key = (batch_id, admin)
        with self._lock:
            if key in self._answers:
                self._drop(key)
            self._answers[key] = (self.clock(), body)
            self._bytes += len(body)
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._answers)))

    def _drop(self, key: tuple[str, bool]) -> None:
        _, body = self._answers.pop(key)
        self._bytes -= len(body)
