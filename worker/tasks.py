"""The Celery tasks (training and model checks) and the worker's signals.

Predictions are not Celery tasks: a predict worker process takes job ids from the lanes itself
(worker/consumer.py), started here once the process is set up. Training and checks are rare and
long, and keep Celery's messages, acknowledgements and time limits.
"""

from __future__ import annotations

import logging
import os
import threading

from celery import signals

from jobs import keys
from jobs.logs import configure_logging
from jobs.queue import CHECK_TASK, TRAIN_TASK
from settings import get_settings
from worker import app
from worker.checking import run_check_job
from worker.process import stop_this_process, this_process

log = logging.getLogger(__name__)
_settings = get_settings()


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


@signals.worker_shutdown.connect
@signals.worker_process_shutdown.connect
def _stop_taking_jobs(**_) -> None:
    """A warm shutdown: the batch in hand is recorded, no more jobs are taken."""
    stop_this_process()


@signals.worker_ready.connect
def _set_up_without_fork(sender, **_) -> None:
    """With the solo or threads pool there is no fork: set up in this process, before any task."""
    # The sender is the worker's consumer (the worker itself in some Celery versions).
    pool = getattr(sender, "pool_cls", None) or getattr(getattr(sender, "controller", None), "pool_cls", None)
    if pool is not None and pool.__module__.split(".")[-1] in ("solo", "threads"):
        _set_up_this_process()
