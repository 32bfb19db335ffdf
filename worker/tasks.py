"""The Celery tasks: micro-batched prediction and training.

``digits.predict`` messages each carry a list of (job id, base64 image) pairs. celery-batches
collects waiting messages and hands up to ``PREDICT_BATCH_MESSAGES`` of them (or whatever
arrived within ``PREDICT_BATCH_WAIT_MS``) to one call, which runs one model call for all.
"""

from __future__ import annotations

import logging
import os

from celery import signals
from celery_batches import Batches

from jobs.queue import PREDICT_TASK, TRAIN_TASK
from worker import app
from worker.serving import get_serving

log = logging.getLogger(__name__)

BATCH_MESSAGES = int(os.environ.get("PREDICT_BATCH_MESSAGES", "64"))
BATCH_WAIT_S = float(os.environ.get("PREDICT_BATCH_WAIT_MS", "5")) / 1000


@app.task(name=PREDICT_TASK, base=Batches, flush_every=BATCH_MESSAGES, flush_interval=BATCH_WAIT_S, acks_late=True)
def predict(requests) -> None:
    items = [tuple(item) for request in requests for item in request.args[0]]
    get_serving().predict_jobs(items)


@app.task(name=TRAIN_TASK, acks_late=False)
def train(job_id: str, params: dict) -> None:
    # Acknowledged on receipt: a training job is not retried after a crash, it ends failed.
    from worker.training import run_training_job

    run_training_job(get_serving(), job_id, params)


_node_name = ""


@signals.celeryd_init.connect
def _remember_node_name(sender: str, **_) -> None:
    """The worker's --hostname (e.g. predict1@host), inherited by its pool processes."""
    global _node_name
    _node_name = sender


@signals.worker_process_init.connect
def _load_model_in_child(**_) -> None:
    """Load the model after the fork (TensorFlow does not survive fork) and before any task."""
    get_serving(f"{_node_name}:{os.getpid()}" if _node_name else "")
