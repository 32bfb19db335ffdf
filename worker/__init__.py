"""Celery workers: ``celery -A worker worker`` serves the predict and train queues.

A process that serves predictions loads the active model once, after any fork, and keeps it
current (worker/model_holder.py); each batch is read in, recognised (worker/batch.py) and written
back by the task (worker/tasks.py); worker/housekeeping.py keeps the process registered and looks
after lost jobs. A process given only ``-Q train`` loads no prediction model.
"""

from jobs.queue import create_celery
from settings import get_settings

app = create_celery()
# celery-batches can only batch what the worker has prefetched: enough messages for two batches
# of single images, few enough that a backlog does not sit unseen in one worker's buffer.
app.conf.worker_prefetch_multiplier = get_settings().predict_batch_images // 2

from worker import tasks  # noqa: E402,F401  (registers the tasks on app)
