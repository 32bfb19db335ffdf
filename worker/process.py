"""This worker process's share of the service, set up once after any fork: Redis, the job
records, the model store, the model and the loop that takes jobs from the lanes (only where
predictions are served), and the housekeeping."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis

from jobs import keys
from jobs import records as rec
from jobs.model_store import ModelStore
from jobs.queue import connect
from settings import Settings, get_settings
from worker.consumer import LaneConsumer
from worker.housekeeping import Housekeeping
from worker.model_holder import ModelHolder


@dataclass
class WorkerProcess:
    name: str
    queues: tuple[str, ...]
    settings: Settings
    redis: redis.Redis
    records: rec.JobRecords
    store: ModelStore
    models: ModelHolder | None  # None in a process that only trains
    # Jobs taken but not recorded (Redis was away): housekeeping gives them back.
    unrecorded: set[str] = field(default_factory=set)
    consumer: LaneConsumer | None = None  # None in a process that only trains


def _start(name: str, queues: Sequence[str]) -> WorkerProcess:
    settings = get_settings()
    client = connect()
    store = ModelStore(client)
    models = None
    if any(name in keys.PREDICT_QUEUES for name in queues):
        if settings.model_backend == "tensorflow":
            from model.runtimes import tensorflow_setup

            tensorflow_setup.configure_threads(settings.tf_intra_op_threads, settings.tf_inter_op_threads)
        models = ModelHolder(store, settings.model_backend, settings.tf_intra_op_threads).start()
    records = rec.JobRecords(client, settings.job_ttl_seconds)
    process = WorkerProcess(name, tuple(queues), settings, client, records, store, models)

    def celery():
        from worker import app  # here, not at import: worker imports this module

        return app

    Housekeeping(process, celery).start()
    if models is not None:
        process.consumer = LaneConsumer(process).start()
    return process


_process: WorkerProcess | None = None
_lock = threading.Lock()


def this_process(name: str = "", queues: Sequence[str] = keys.QUEUES) -> WorkerProcess:
    """This process's :class:`WorkerProcess`, set up (model loaded, if it predicts) on first use."""
    global _process
    with _lock:
        if _process is None:
            _process = _start(name or f"{os.uname().nodename}:{os.getpid()}", queues)
        return _process


def stop_this_process() -> None:
    """Stop taking prediction jobs, once the batch in hand is recorded (a warm shutdown)."""
    if _process is not None and _process.consumer is not None:
        _process.consumer.stop(timeout=2 * _process.settings.predict_batch_budget_ms / 1000 + 5)
