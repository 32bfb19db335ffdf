"""Celery workers: ``celery -A worker worker`` serves the prediction lanes and the train queue.

A process that serves predictions loads the active model once, after any fork, and keeps it
current (worker/model_holder.py); it takes batches of jobs from the lanes (worker/consumer.py),
reads each batch in, recognises it (worker/batch.py) and writes it back (worker/predicting.py);
worker/housekeeping.py keeps the process registered and looks after lost jobs. A process given
only ``-Q train`` loads no prediction model.
"""

from jobs.queue import create_celery
from model.runtimes import tensorflow_setup
from settings import get_settings

# Before anything this process runs imports TensorFlow, which reads it once.
tensorflow_setup.set_log_level(get_settings().tf_cpp_min_log_level)

app = create_celery()
# Celery's messages here are training jobs and model checks: long, so none waits in a busy
# worker's buffer while another worker could start it.
app.conf.worker_prefetch_multiplier = 1

from worker import tasks  # noqa: E402,F401  (registers the tasks on app)
