"""A predict worker's loop, on a thread of the worker's main process: take a batch of job ids from
the lanes (fast lane first), recognise them (worker/predicting.py), and again. The fast lane's
jobs of a batch are recognised and recorded before the bulk jobs taken with them, so a polite
client's image waits for one model call of its own, not for a batch of someone's backlog.

There is no batching timer: what arrives while one batch is recognised forms the next, so batches
grow with the load, and a lone job is taken the moment it arrives. A worker takes only what it
recognises next (jobs of at most ``PREDICT_BATCH_IMAGES`` images), so nothing waits in one worker's hands
while another is idle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from jobs import keys
from jobs import records as rec
from jobs.lanes import LaneReader
from worker.housekeeping import resident_bytes
from worker.predicting import predict_jobs
from worker.process import WorkerProcess

log = logging.getLogger(__name__)

# How long one wait for work lasts before the loop looks at whether it should stop.
WAIT_S = 1.0


class LaneConsumer:
    """Started once per predict worker (worker/bootstep.py); :meth:`stop` ends it after the batch in hand.

    If the loop itself dies (an exception no batch's handling caught), ``on_death`` is called with
    why: a worker whose consumer is gone must not go on saying it is ready (worker/bootstep.py
    makes it leave, for its supervisor to start it again)."""

    def __init__(self, process: WorkerProcess, on_death: Callable[[str], None]):
        self.process = process
        self.on_death = on_death
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
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - whatever killed the loop, the worker must know
            log.critical("the lane consumer died; this worker takes no more jobs and exits", exc_info=True)
            self.on_death(f"the lane consumer died: {type(exc).__name__}: {exc}"[:300])

    def _loop(self) -> None:
        reader = LaneReader(self.process.redis, self.lanes)
        most = self.process.settings.predict_batch_images
        while not self._stopping.is_set():
            try:
                batches = reader.take(most, WAIT_S)
            except redis.RedisError as exc:  # Redis away: wait, then try again
                log.warning("cannot take jobs from the lanes: %s", exc)
                self._stopping.wait(1)
                continue
            for batch in batches:  # the fast lane's first, recorded before the bulk jobs begin
                self.serve(batch)
            if batches and (over := self._over_memory()):
                log.critical("%s; this worker takes no more jobs and exits, to be started afresh", over)
                self.on_death(over)
                return

    def _over_memory(self) -> str:
        """Why this process holds too much memory (after a batch: what it holds between batches
        is what it would carry into the next), or '' when it does not."""
        bound_mb = self.process.settings.worker_memory_mb
        held = resident_bytes()
        if bound_mb and held > bound_mb * 1024 * 1024:
            return f"resident memory {held / 2**20:.0f} MB is over WORKER_MEMORY_MB ({bound_mb})"
        return ""

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
