"""A worker process's chores, on a thread of their own: say it is alive, and look after jobs
that lost their worker or their queue message.

Every :data:`~jobs.workers.HEARTBEAT_S` seconds the process beats in the worker registry, gives
back the jobs it took but could not record (Redis was away), queues again the jobs of workers
that died (their heartbeat stopped), fails running training jobs whose worker went silent, and,
when the prediction lanes are empty, queues again jobs still queued long after they were sent
(their lane entry or message was lost). Any live
worker may do all of it: the work is idempotent, and a job sent twice is taken once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from celery import Celery

from jobs import keys, lanes, workers
from jobs.recovery import requeue_lost
from worker.predicting import give_back, send_again

if TYPE_CHECKING:
    from worker.process import WorkerProcess

log = logging.getLogger(__name__)


class Housekeeping:
    """Started once per worker process; runs until the process ends."""

    def __init__(self, process: WorkerProcess, celery: Callable[[], Celery]):
        """``celery`` gives the app to send training and check messages with."""
        self.process, self.celery = process, celery

    def start(self) -> Housekeeping:
        threading.Thread(target=self._run, daemon=True, name="housekeeping").start()
        return self

    def beat(self) -> None:
        process = self.process
        predictor = process.models.current if process.models else None
        version = predictor.version if predictor else None
        backend = process.settings.model_backend if process.models else ""
        problem = process.models.problem if process.models else ""
        workers.beat(
            process.redis, process.name, process.queues, version, backend, _resident_bytes(), os.getpid(), problem
        )

    def chores(self) -> None:
        process, records = self.process, self.process.records
        held = [process.unrecorded.pop() for _ in range(len(process.unrecorded))]
        if held:
            released = give_back(process, held)
            log.warning("gave back %d jobs Redis could not record", len(released), extra={"job_ids": released})
        orphans = records.running_on_dead_workers(workers.SILENCE_S, resend_every_s=workers.SILENCE_S)
        if orphans:
            send_again(process, orphans)
            log.warning("their worker died: %d jobs sent again", len(orphans), extra={"job_ids": orphans})
        for job_id in records.fail_silent_training(process.settings.training_stale_seconds):
            log.warning("job %s: training worker lost; job failed", job_id, extra={"job_id": job_id})
        if not any(lanes.depth(process.redis, name) for name in keys.PREDICT_QUEUES):  # a backlog is no loss
            requeue_lost(records, self.celery(), older_than_s=2 * process.settings.broker_visibility_timeout)

    def _run(self) -> None:
        while True:
            try:
                self.beat()
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
