"""A worker process's chores, on a thread of their own: say it is alive, and look after jobs
that lost their worker or their queue message.

Every :data:`~jobs.workers.HEARTBEAT_S` seconds the process beats in the worker registry; every
:data:`CHORES_S` seconds it also fails running training jobs whose worker went silent and sends
again the queue messages that were lost (any live worker may do both; the work is idempotent).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence

from celery import Celery

from jobs import records as rec
from jobs import workers
from jobs.recovery import requeue_lost

log = logging.getLogger(__name__)

CHORES_S = 5.0


class Housekeeping:
    """Started once per worker process; runs until the process ends."""

    def __init__(
        self,
        name: str,
        queues: Sequence[str],
        records: rec.JobRecords,
        celery: Callable[[], Celery],
        serving: Callable[[], tuple[int | None, str]],
        training_silence_s: float,
        lost_after_s: float,
    ):
        """``celery`` gives the app to send with; ``serving`` tells the model version and backend in hand."""
        self.name, self.queues, self.records = name, tuple(queues), records
        self.celery, self.serving = celery, serving
        self.training_silence_s, self.lost_after_s = training_silence_s, lost_after_s

    def start(self) -> Housekeeping:
        threading.Thread(target=self._run, daemon=True, name="housekeeping").start()
        return self

    def beat(self) -> None:
        version, backend = self.serving()
        workers.beat(self.records.redis, self.name, self.queues, version, backend, _resident_bytes(), os.getpid())

    def chores(self) -> None:
        for job_id in self.records.fail_silent_training(self.training_silence_s):
            log.warning("job %s: training worker lost; job failed", job_id, extra={"job_id": job_id})
        requeue_lost(self.records, self.celery(), older_than_s=self.lost_after_s)

    def _run(self) -> None:
        last_chores = time.monotonic()
        while True:
            try:
                self.beat()
                if time.monotonic() - last_chores >= CHORES_S:
                    last_chores = time.monotonic()
                    self.chores()
            except Exception as exc:  # Redis away: the next round will tell
                log.warning("housekeeping: %s", exc)
            time.sleep(workers.HEARTBEAT_S)


def _resident_bytes() -> int:
    """This process's resident memory (Linux), 0 where unknown."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0
