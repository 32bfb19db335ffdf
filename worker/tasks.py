"""The Celery tasks: micro-batched prediction and training.

``digits.predict`` messages each carry a list of job ids (the images wait in Redis beside the
records). celery-batches collects the waiting messages; every ``PREDICT_BATCH_WAIT_MS`` a batch
is formed from them, fast lane first, of at most ``PREDICT_BATCH_IMAGES`` job ids, and handed to
one call (worker/predicting.py): the records hand over the images in one round trip, one model
call reads them, one more round trip writes every outcome.
"""

from __future__ import annotations

import logging
import os
import threading

import redis
from celery import signals
from celery_batches import Batches, SimpleRequest, consume_queue
from celery_batches.trace import apply_batches_task

from jobs import keys
from jobs import records as rec
from jobs.logs import configure_logging
from jobs.queue import CHECK_TASK, PREDICT_TASK, TRAIN_TASK
from settings import get_settings
from worker import app
from worker.checking import run_check_job
from worker.predicting import predict_jobs
from worker.process import this_process

log = logging.getLogger(__name__)


class RequeueingBatches(Batches):
    """celery-batches, except that a batch whose results could not be recorded (Redis away, or the
    pool process killed) goes back on the queue instead of being acknowledged, and that batching
    survives a reconnection to the broker."""

    def Strategy(self, task, app, consumer):  # noqa: N802 (Celery's name)
        # Called again whenever the consumer (re)connects. The old connection's flush timer died
        # with it, and its buffered messages were handed back to the broker: start afresh, or a
        # lone job would wait in the buffer for ever (celery-batches keeps the dead timer).
        if self._tref is not None:
            self._tref.cancel()
        self._tref = None
        for stale in (self._buffer, self._pending):
            while not stale.empty():
                stale.get_nowait()
        return super().Strategy(task, app, consumer)

    def _do_flush(self) -> None:
        """Flush one batch: the fast lane's messages first, up to ``PREDICT_BATCH_IMAGES`` job ids;
        the rest wait in the buffer for the next flush (the timer keeps running while they do)."""
        waiting = sorted(consume_queue(self._buffer), key=_lane_rank)
        taken, images = [], 0
        for request in waiting:
            size = _size(request)
            if taken and images + size > _settings.predict_batch_images:
                break
            taken.append(request)
            images += size
        for request in waiting[len(taken) :]:
            self._buffer.put(request)
        if taken:
            self.flush(taken)
        elif self._tref is not None:
            self._tref.cancel()
            self._tref = None

    def flush(self, requests):
        simple = ([SimpleRequest.from_request(request) for request in requests],)

        def settle(recorded: bool | None) -> None:
            for request in requests:
                if recorded:
                    request.acknowledge()
                else:
                    request.reject(requeue=True)

        return self._pool.apply_async(
            apply_batches_task,
            (self, simple, 0, None),
            callback=settle,
            error_callback=lambda _exc: settle(False),
        )


def _lane_rank(request) -> int:
    """0 for the fast lane, 1 for the bulk lane (celery's request says which queue it came from)."""
    return 0 if (request.delivery_info or {}).get("routing_key") != keys.BULK_QUEUE else 1


def _size(request) -> int:
    args = request.args
    return len(args[0]) if isinstance(args, list | tuple) and args and isinstance(args[0], list) else 1


def job_ids_of(requests) -> list[str]:
    """The job ids the messages carry; a message of any other shape is logged and left out
    (acknowledged with the rest: sending it again would not mend it)."""
    job_ids = []
    for request in requests:
        args = request.args
        ids = args[0] if isinstance(args, list | tuple) and len(args) == 1 and isinstance(args[0], list) else None
        if ids is None or not all(rec.is_job_id(job_id) for job_id in ids):
            log.warning("dropped a malformed predict message: %.200r", args)
            continue
        job_ids += ids
    return job_ids


_settings = get_settings()


@app.task(
    name=PREDICT_TASK,
    base=RequeueingBatches,
    # Batches are formed every flush_interval (see _do_flush); a full buffer need not wait for it.
    flush_every=2 * _settings.predict_batch_images,
    flush_interval=_settings.predict_batch_wait_ms / 1000,
    acks_late=True,
)
def predict(requests) -> bool:
    """Returns whether every job of the batch was recorded (else its messages are requeued)."""
    job_ids = job_ids_of(requests)
    process = this_process()
    try:
        predict_jobs(process, job_ids, app)
    except redis.exceptions.RedisError as exc:
        # Jobs this process took stay its own until it gives them back, once Redis answers again.
        process.unrecorded.update(job_ids)
        log.warning(
            "Redis unavailable (%s): %d jobs go back on the queue", exc, len(job_ids), extra={"job_ids": job_ids}
        )
        return False
    except Exception:
        # Not a transient failure: redelivery would fail the same way, so end the jobs with the reason.
        log.exception("batch of %d jobs failed", len(job_ids), extra={"job_ids": job_ids})
        failure = rec.error("internal_error", "the worker failed on this batch; see its log")
        process.records.finish(rec.Outcome(job_id, rec.FAILED, error=failure) for job_id in job_ids)
    log.debug("batch of %d jobs done", len(job_ids), extra={"job_ids": job_ids})
    return True


@app.task(
    name=TRAIN_TASK,
    acks_late=False,
    # Stopped after TRAINING_TIME_LIMIT (it ends failed, saying so); killed a minute later if it
    # does not stop (its heartbeat then stops too, and it is failed as lost).
    soft_time_limit=_settings.training_time_limit,
    time_limit=_settings.training_time_limit + 60,
)
def train(job_id: str) -> None:
    # Acknowledged on receipt: a training job is not retried after a crash, it ends failed.
    from worker.training import run_training_job

    run_training_job(this_process(), job_id)


@app.task(name=CHECK_TASK, acks_late=False)
def check(job_id: str) -> None:
    """Check the model version the job names (the job's result is the verdict), on a thread of its
    own: the check runs in a child process, and this worker goes on serving meanwhile."""
    threading.Thread(target=run_check_job, args=(this_process(), job_id), daemon=True, name="model-check").start()


_node_name = ""
_queues: tuple[str, ...] = keys.QUEUES


class _WorkerName(logging.Filter):
    """Names the worker (--hostname and process id) on every log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = f"{_node_name}:{os.getpid()}"
        return True


@signals.setup_logging.connect
def _structured_logs(**_) -> None:
    """Celery's own and ours alike: one JSON object per line (LOG_FORMAT=text for people)."""
    configure_logging(context=_WorkerName())


@signals.celeryd_init.connect
def _remember_node(sender: str, options: dict | None = None, **_) -> None:
    """The worker's --hostname (e.g. predict1@host) and -Q queues, inherited by its pool processes."""
    global _node_name, _queues
    _node_name = sender
    given = (options or {}).get("queues") or ()
    given = given.split(",") if isinstance(given, str) else given
    _queues = tuple(q for q in given if q) or keys.QUEUES


def _set_up_this_process() -> None:
    this_process(f"{_node_name}:{os.getpid()}" if _node_name else "", _queues)


@signals.worker_process_init.connect
def _set_up_after_fork(**_) -> None:
    """Load the model after the fork (TensorFlow does not survive fork) and before any task."""
    _set_up_this_process()


@signals.worker_ready.connect
def _set_up_without_fork(sender, **_) -> None:
    """With the solo or threads pool there is no fork: set up in this process, before any task."""
    # The sender is the worker's consumer (the worker itself in some Celery versions).
    pool = getattr(sender, "pool_cls", None) or getattr(getattr(sender, "controller", None), "pool_cls", None)
    if pool is not None and pool.__module__.split(".")[-1] in ("solo", "threads"):
        _set_up_this_process()
