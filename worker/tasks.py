"""The Celery tasks: training jobs and model checks, rare and long, which keep Celery's messages,
acknowledgements and time limits. Predictions are not Celery tasks (worker/consumer.py)."""

from __future__ import annotations

import threading

from jobs.queue import CHECK_TASK, TRAIN_TASK
from settings import get_settings
from worker.celery_app import app
from worker.checking import run_check_job
from worker.process import current

_settings = get_settings()


@app.task(
    name=TRAIN_TASK,
    acks_late=False,
    # Stopped after TRAINING_TIME_LIMIT (it ends failed, saying so); killed a minute later if it
    # does not stop (its heartbeat then stops too, and it is failed as lost). The kill needs the
    # prefork pool; under solo the training's own check between batches stops it.
    soft_time_limit=_settings.training_time_limit,
    time_limit=_settings.training_time_limit + 60,
)
def train(job_id: str) -> None:
    # Acknowledged on receipt: a training job is not retried after a crash, it ends failed.
    from worker.training import run_training_job  # TensorFlow: only where training runs

    run_training_job(current(), job_id)


@app.task(name=CHECK_TASK, acks_late=False)
def check(job_id: str) -> None:
    """Check the model version the job names (the job's result is the verdict), on a thread of its
    own: the check runs in a child process, and this worker goes on serving meanwhile."""
    threading.Thread(target=run_check_job, args=(current(), job_id), daemon=True, name="model-check").start()
