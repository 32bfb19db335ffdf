"""Celery workers: ``celery -A worker worker -Q <queues>``. The queues a worker is given make its role.

What runs where (the worker's process model; this is the one place it is decided):

- **Predictions travel in the lanes, not as Celery messages.** The web records each job and puts
  its id in a lane (jobs/lanes.py, ``predict`` and ``predict_bulk``); a worker given a lane takes
  up to a batch of ids at once and recognises them in one model call (worker/consumer.py,
  worker/predicting.py). Measured when the lanes replaced the predict task (commit 0b15f74): single
  images with ``?wait=`` from 32 clients went from 351 to 598 a second, and the workers' CPU per
  image from 2.27 to 1.16 ms; and a worker holds only the batch in hand, never a prefetched backlog.
- **Training jobs and model checks stay Celery tasks** (worker/tasks.py): rare and long, they keep
  Celery's messages, acknowledgements and time limits. Training waits in the ``train`` queue;
  checks in Celery's ``predict`` queue, which every predict worker consumes.
- **TensorFlow does not survive a fork**, so a model must be loaded in the process that uses it.
  The lane consumer, the model it serves (worker/model_holder.py) and the housekeeping
  (worker/housekeeping.py) run in the worker's main process, set up by a Celery worker bootstep
  (worker/bootstep.py) when the worker starts and stopped with it. So a predict worker is one
  process: it runs the solo pool (one that is started with another pool is switched to solo, with
  a warning in its log), and more cores are used by starting more predict workers (one per core,
  with ``TF_INTRA_OP_THREADS=1``; ``python -m stack --predict-workers 2``; compose's
  ``--scale worker=N``). The solo pool was also the faster one when it was measured (commit 75699ee:
  162 against 101 images a second). A model check runs on a thread of that process and checks the
  version in a child process of its own (a fresh interpreter, held to memory and time limits).
- **Training runs in a worker of its own** (``-Q train``) with the prefork pool and one process
  (``-c 1``): the job runs in the pool process, forked before anything is loaded, so its hard time
  limit can kill it and the worker lives on; the worker loads no prediction model. Under solo, or
  in a worker that serves the lanes too (``celery -A worker worker`` alone serves every queue, for
  one machine), training runs in the main process and is stopped only by its own check of the
  time limit between batches.
- **A warm shutdown** (SIGTERM) takes no more jobs and records the batch in hand, waiting at most
  two batch budgets and one image's (``PREDICT_BATCH_BUDGET_MS``, ``PREPROCESS_BUDGET_MS``); jobs
  not begun go back to their lanes. A cold one (SIGQUIT, or Ctrl-C twice) does not wait: like the jobs of a
  worker that died, its batch is taken over once its heartbeat stops (jobs/lanes.py, ``give_back``).

Every log line names the process that wrote it (worker/logs.py).
"""

from worker import logs, tasks  # noqa: F401  (connect the logging signals, register the tasks on app)
from worker.bootstep import ServiceStep
from worker.celery_app import app

app.steps["worker"].add(ServiceStep)

__all__ = ["app"]
