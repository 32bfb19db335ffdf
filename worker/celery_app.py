"""The worker's Celery app, for every module of the worker that needs it; it imports nothing of the
worker back (the tasks and the bootstep register themselves on it in worker/__init__.py)."""

from jobs.queue import create_celery
from model.runtimes import tensorflow_setup
from settings import get_settings

# Before anything this process runs imports TensorFlow, which reads it once.
tensorflow_setup.set_log_level(get_settings().tf_cpp_min_log_level)

app = create_celery()
# Celery's messages here are training jobs and model checks: long, so none waits in a busy
# worker's buffer while another worker could start it.
app.conf.worker_prefetch_multiplier = 1
