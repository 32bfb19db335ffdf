"""Celery workers: ``celery -A worker worker`` serves the predict and train queues.

Each worker process loads the active model once, after the fork, and keeps it in memory.
"""

import os

from jobs.queue import create_celery

app = create_celery()
# celery-batches can only batch what the worker has prefetched.
app.conf.worker_prefetch_multiplier = 2 * int(os.environ.get("PREDICT_BATCH_MESSAGES", "64"))

from worker import tasks  # noqa: E402,F401  (registers the tasks on app)
