"""A worker's chores, on a thread of its main process: say it is alive, and look after jobs that
lost their worker or their queue message.

Every :data:`~jobs.workers.HEARTBEAT_S` seconds the process beats in the worker registry, gives
back the jobs it took but could not record (Redis was away), queues again the jobs of workers
that died (their heartbeat stopped), fails running training jobs whose worker went silent, and,
when the prediction lanes are empty, queues again jobs still queued long after they were sent
(their lane entry or message was lost). Any live worker may do all of it: the work is idempotent,
and a job sent twice is taken once.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import threading

from celery import Celery

from jobs import keys, lanes, workers
from jobs.recovery import requeue_lost
from worker.process import WorkerProcess

log = logging.getLogger(__name__)


class Housekeeping:
    """Started once per worker (worker/bootstep.py); runs until :meth:`stop`."""

    def __init__(self, process: WorkerProcess, app: Celery):
        """``app`` sends the training and check messages found lost."""
        self.process, self.app = process, app
        self._stopping = threading.Event()

    def start(self) -> Housekeeping:
        threading.Thread(target=self._run, daemon=True, name="housekeeping").start()
        return self

    def stop(self) -> None:
        """No more rounds (one under way ends on its own)."""
        self._stopping.set()

    def beat(self) -> None:
        process = self.process
        predictor = process.models.current if process.models and not process.broken else None
        version = predictor.version if predictor else None  # none: not ready
        backend = process.settings.model_backend if process.models else ""
        problem = process.broken or (process.models.problem if process.models else "")
        workers.beat(
            process.redis, process.name, process.queues, version, backend, resident_bytes(), process.pid, problem
        )

    def chores(self) -> None:
        process, records = self.process, self.process.records
        held = [process.unrecorded.pop() for _ in range(len(process.unrecorded))]
        if held:
            released = lanes.give_back(records, held, taken_by=process.name)
            log.warning("gave back %d jobs Redis could not record", len(released), extra={"job_ids": released})
        orphans = records.running_on_dead_workers(workers.SILENCE_S, resend_every_s=workers.SILENCE_S)
        if orphans:
            lanes.give_back(records, orphans)
            log.warning("their worker died: %d jobs sent again", len(orphans), extra={"job_ids": orphans})
        for job_id in records.fail_silent_training(process.settings.training_stale_seconds):
            log.warning("job %s: training worker lost; job failed", job_id, extra={"job_id": job_id})
        if not any(lanes.depth(process.redis, name) for name in keys.PREDICT_QUEUES):  # a backlog is no loss
            requeue_lost(records, self.app, older_than_s=2 * process.settings.broker_visibility_timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.beat()
                self.chores()
            except Exception as exc:  # Redis away: the next round will tell
                log.warning("housekeeping: %s", exc)
            self._stopping.wait(workers.HEARTBEAT_S)


def resident_bytes() -> int:
    """The resident memory (Linux) of this process and its children (a prefork worker's pool
    processes, where training runs; a model check), 0 where unknown."""
    pids = ["self"]
    for children in glob.glob("/proc/self/task/*/children"):
        with contextlib.suppress(OSError), open(children) as listed:
            pids += listed.read().split()
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/statm") as statm:
            total += int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return total
