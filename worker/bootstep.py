"""This worker's share of the service, as a Celery worker bootstep (Celery's extension point for
what a worker runs beside its pool): set up in the worker's main process when the worker starts,
stopped when it stops. The process model it carries out is the worker package's (worker/__init__.py).
"""

from __future__ import annotations

import logging

from celery import bootsteps
from celery.concurrency.solo import TaskPool as SoloPool
from celery.worker import WorkController
from celery.worker import state as worker_state

from jobs import tracing
from worker.consumer import LaneConsumer
from worker.housekeeping import Housekeeping
from worker.process import WorkerProcess, open_process, serves_predictions, set_current, this_worker_is

log = logging.getLogger(__name__)

# The exit status of a worker that left because it could no longer serve (EX_SOFTWARE): not 0,
# so that a supervisor restarting on failure (docker-compose, Kubernetes, `make run`) starts it again.
EXIT_BROKEN = 70


class ServiceStep(bootsteps.StartStopStep):
    """Opens this process's :class:`~worker.process.WorkerProcess` (with the model, where the worker
    serves predictions), then runs the housekeeping and, where it serves predictions, the lane
    consumer; a warm shutdown records the batch in hand and takes no more."""

    # After the pool: a prefork pool forks its processes before any model or thread exists here.
    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker: WorkController, **kwargs):
        super().__init__(worker, **kwargs)
        self.queues = tuple(worker.app.amqp.queues.consume_from)
        this_worker_is(worker.hostname, self.queues)
        self.process: WorkerProcess | None = None
        self.housekeeping: Housekeeping | None = None
        self.consumer: LaneConsumer | None = None
        if serves_predictions(self.queues) and not issubclass(worker.pool_cls, SoloPool):
            # Runs before the pool is made (every step's __init__ comes before any step's create).
            asked = f"{worker.pool_cls.__module__.rsplit('.', 1)[-1]} pool, concurrency {worker.concurrency}"
            log.warning(
                "a worker that serves the prediction lanes runs the solo pool, one process (asked for: %s); "
                "to use more cores, start more workers",
                asked,
            )
            worker.pool_cls = SoloPool
            worker.concurrency = worker.min_concurrency = 1

    def start(self, worker: WorkController) -> None:
        predicts = serves_predictions(self.queues)
        tracing.set_up("digits-worker", celery=True)
        self.process = open_process(worker.hostname, self.queues, with_model=predicts)
        set_current(self.process)
        self.housekeeping = Housekeeping(self.process, worker.app).start()
        if predicts:
            self.consumer = LaneConsumer(self.process, on_death=self._leave).start()

    def _leave(self, why: str) -> None:
        """The lane consumer died: say at once that this worker is not ready, then shut down warm
        (Celery's main loop checks this flag) with a failing status."""
        if self.process is None or self.housekeeping is None:
            return
        self.process.broken = why
        try:
            self.housekeeping.beat()
        except Exception as exc:  # Redis away: the beats stop with the process anyway
            log.warning("could not say this worker is not ready: %s", exc)
        worker_state.should_stop = EXIT_BROKEN

    def stop(self, worker: WorkController) -> None:
        """A warm shutdown: wait for the batch in hand to be recorded, for at most two batch budgets
        and the one image a batch may finish past its budget."""
        if self.process is not None:
            settings = self.process.settings
            self._stop(timeout=(2 * settings.predict_batch_budget_ms + settings.preprocess_budget_ms) / 1000)

    def terminate(self, worker: WorkController) -> None:
        """A cold shutdown: no waiting (a batch in hand is taken over once this worker falls silent)."""
        self._stop(timeout=0)

    def _stop(self, timeout: float) -> None:
        if self.consumer is not None:
            self.consumer.stop(timeout)
        if self.housekeeping is not None:
            self.housekeeping.stop()
