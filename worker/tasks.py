"""The Celery tasks: micro-batched prediction and training.

``digits.predict`` messages each carry a list of (job id, base64 image) pairs. celery-batches
collects waiting messages and hands up to ``PREDICT_BATCH_MESSAGES`` of them (or whatever
arrived within ``PREDICT_BATCH_WAIT_MS``) to one call, which runs one model call for all.
"""

from __future__ import annotations

import logging
import os

import redis
from celery import signals
from celery_batches import Batches, SimpleRequest
from celery_batches.trace import apply_batches_task

from jobs import records as rec
from jobs.logs import configure_logging
from jobs.queue import PREDICT_TASK, TRAIN_TASK
from worker import app
from worker.serving import get_serving

log = logging.getLogger(__name__)

BATCH_MESSAGES = int(os.environ.get("PREDICT_BATCH_MESSAGES", "64"))
BATCH_WAIT_S = float(os.environ.get("PREDICT_BATCH_WAIT_MS", "2")) / 1000


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


@app.task(
    name=PREDICT_TASK, base=RequeueingBatches, flush_every=BATCH_MESSAGES, flush_interval=BATCH_WAIT_S, acks_late=True
)
def predict(requests) -> bool:
    """Returns whether every job of the batch was recorded (else its messages are requeued)."""
    items = [tuple(item) for request in requests for item in request.args[0]]
    serving = get_serving()
    try:
        serving.predict_jobs(items)
    except redis.exceptions.RedisError as exc:
        ids = [job_id for job_id, _ in items]
        log.warning("Redis unavailable (%s): %d jobs go back on the queue", exc, len(items), extra={"job_ids": ids})
        return False
    except Exception:
        # Not a transient failure: redelivery would fail the same way, so end the jobs with the reason.
        log.exception("batch of %d jobs failed", len(items), extra={"job_ids": [job_id for job_id, _ in items]})
        failure = rec.error("internal_error", "the worker failed on this batch; see its log")
        serving.records.finish(rec.Outcome(job_id, rec.FAILED, error=failure) for job_id, _ in items)
    return True


@app.task(name=TRAIN_TASK, acks_late=False)
def train(job_id: str, params: dict) -> None:
    # Acknowledged on receipt: a training job is not retried after a crash, it ends failed.
    from worker.training import run_training_job

    run_training_job(get_serving(), job_id, params)


_node_name = ""


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
def _remember_node_name(sender: str, **_) -> None:
    """The worker's --hostname (e.g. predict1@host), inherited by its pool processes."""
    global _node_name
    _node_name = sender


@signals.worker_process_init.connect
def _load_model_in_child(**_) -> None:
    """Load the model after the fork (TensorFlow does not survive fork) and before any task."""
    get_serving(f"{_node_name}:{os.getpid()}" if _node_name else "")


@signals.worker_ready.connect
def _load_model_without_fork(sender, **_) -> None:
    """With the solo or threads pool there is no fork: load in this process, before any task."""
    if sender.pool_cls.__module__.split(".")[-1] in ("solo", "threads"):
        get_serving(f"{_node_name}:{os.getpid()}" if _node_name else "")
