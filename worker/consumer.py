"""A predict worker's loop, on a thread of the worker's main process: take a batch of job ids from
the lanes (fast lane first), recognise them (worker/predicting.py), and again.

There is no batching timer: what arrives while one batch is recognised forms the next, so batches
grow with the load, and a lone job is taken the moment it arrives. A worker takes only what it
recognises next (jobs of at most ``PREDICT_BATCH_IMAGES`` images), so nothing waits in one worker's hands
while another is idle.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from jobs import keys
from jobs import records as rec
from jobs.lanes import LaneReader
from worker.predicting import predict_jobs
from worker.process import WorkerProcess

log = logging.getLogger(__name__)

# How long one wait for work lasts before the loop looks at whether it should stop.
WAIT_S = 1.0


class LaneConsumer:
    """Started once per predict worker (worker/bootstep.py); :meth:`stop` ends it after the batch in hand."""

    def __init__(self, process: WorkerProcess):
        self.process = process
        self.lanes = [name for name in process.queues if name in keys.PREDICT_QUEUES]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="lane-consumer")

    def start(self) -> LaneConsumer:
        self._thread.start()
        log.info("taking prediction jobs from the lanes %s", ", ".join(self.lanes))
        return self

    def stop(self, timeout: float) -> bool:
        """Take no more jobs; wait up to ``timeout`` seconds for the batch in hand to be recorded.
        Returns whether it was (a batch not recorded is taken over once this worker falls silent)."""
        self._stopping.set()
        started = time.monotonic()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("stopped taking prediction jobs; the batch in hand was not recorded within %.1f s", timeout)
            return False
        log.info("stopped taking prediction jobs (the batch in hand recorded in %.2f s)", time.monotonic() - started)
        return True

    def _run(self) -> None:
        reader = LaneReader(self.process.redis, self.lanes)
        most = self.process.settings.predict_batch_images
        while not self._stopping.is_set():
            try:
                job_ids = reader.take(most, WAIT_S)
            except redis.RedisError as exc:  # Redis away: wait, then try again
                log.warning("cannot take jobs from the lanes: %s", exc)
                self._stopping.wait(1)
                continue
            if job_ids:
                self.serve(job_ids)

    def serve(self, taken: list[str]) -> None:
        """Recognise and record the jobs; jobs Redis could not record stay this process's own until
        housekeeping gives them back. Never raises: one bad batch must not stop the loop."""
        job_ids = [job_id for job_id in map(keys.job_of_lane_entry, taken) if rec.is_job_id(job_id)]
        if len(job_ids) < len(taken):
            # Only this service writes the lanes; anything else there is dropped, not recognised or retried.
            log.warning("dropped %d lane entries that are not job ids: %.200r", len(taken) - len(job_ids), taken)
        if not job_ids:
            return
        process = self.process
        try:
            predict_jobs(process, job_ids)
        except redis.RedisError as exc:
            process.unrecorded.update(job_ids)
            log.warning("Redis unavailable (%s): %d jobs go back to their lanes later", exc, len(job_ids))
        except Exception:
            # Not a transient failure: trying again would fail the same way, so end the jobs with the reason.
            log.exception("batch of %d jobs failed", len(job_ids), extra={"job_ids": job_ids})
            failure = rec.error("internal_error", "the worker failed on this batch; see its log")
            try:
                process.records.finish(rec.Outcome(job_id, rec.FAILED, error=failure) for job_id in job_ids)
            except redis.RedisError:
                process.unrecorded.update(job_ids)
