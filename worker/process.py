"""What one worker process works with: its name, the queues its worker serves, the settings, Redis,
the job records, the model store and (where it serves predictions) the model.

The worker's main process opens its own in the bootstep (worker/bootstep.py), model included. A
pool process (a prefork worker's child, where training runs) opens one of its own on first use,
after the fork and without a model: nothing opened before a fork is used after it.
"""

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
from worker.model_holder import ModelHolder


@dataclass
class WorkerProcess:
    hostname: str  # the worker's --hostname, e.g. predict1@host
    queues: tuple[str, ...]
    settings: Settings
    redis: redis.Redis
    records: rec.JobRecords
    store: ModelStore
    models: ModelHolder | None  # None where no model is served: a training worker, a pool process
    pid: int = field(default_factory=os.getpid)
    # Jobs taken but not recorded (Redis was away): housekeeping gives them back.
    unrecorded: set[str] = field(default_factory=set)
    # Why this process can no longer serve (its lane consumer died); its heartbeat then says so.
    broken: str = ""

    @property
    def name(self) -> str:
        """How the worker registry, the job records and the logs name this process."""
        return f"{self.hostname}:{self.pid}"


def serves_predictions(queues: Sequence[str]) -> bool:
    """Whether a worker consuming ``queues`` takes prediction jobs from a lane."""
    return any(name in keys.PREDICT_QUEUES for name in queues)


def open_process(hostname: str, queues: Sequence[str], with_model: bool) -> WorkerProcess:
    """This process's connections and records; ``with_model`` loads the active model first."""
    settings = get_settings()
    client = connect()
    store = ModelStore(client)
    models = None
    if with_model:
        if settings.model_backend == "tensorflow":
            from model.runtimes import tensorflow_setup

            tensorflow_setup.configure_threads(settings.tf_intra_op_threads, settings.tf_inter_op_threads)
        models = ModelHolder(store, settings.model_backend, settings.tf_intra_op_threads).start()
    finished = rec.FinishedLimits(settings.max_finished_jobs, settings.max_finished_per_client)
    records = rec.JobRecords(client, settings.job_ttl_seconds, finished_limits=finished)
    return WorkerProcess(hostname, tuple(queues), settings, client, records, store, models)


# This worker's --hostname and queues, told by the bootstep before any pool process forks.
_worker: tuple[str, tuple[str, ...]] = (os.uname().nodename, keys.QUEUES)
_current: WorkerProcess | None = None
_lock = threading.Lock()


def this_worker_is(hostname: str, queues: Sequence[str]) -> None:
    """Name the worker this process belongs to (and the pool processes it forks after)."""
    global _worker
    _worker = (hostname, tuple(queues))


def set_current(process: WorkerProcess) -> None:
    """Make ``process`` what :func:`current` answers in this process (the bootstep's, in the main one)."""
    global _current
    with _lock:
        _current = process


def current() -> WorkerProcess:
    """This process's :class:`WorkerProcess`: the main process's, or, in a pool process, its own,
    opened on first use (named after the same worker, serving the same queues, without a model)."""
    global _current
    with _lock:
        if _current is None or _current.pid != os.getpid():
            _current = open_process(*_worker, with_model=False)
        return _current
