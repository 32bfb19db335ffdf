"""The Celery app both sides share: JSON-only messages of job ids for training jobs (queue ``train``)
and model checks (queue ``predict``, which every predict worker consumes).

Predictions do not travel as Celery messages: their ids wait in the lanes (jobs/lanes.py). The
web only sends (by task name, so it never imports the worker's TensorFlow code); the worker
registers the tasks on the same app configuration.
"""

from __future__ import annotations

import redis
from celery import Celery
from kombu import Queue

from jobs import connection, keys
from settings import get_settings

TRAIN_TASK = "digits.train"
CHECK_TASK = "digits.check"  # a model version before it may be served; on a predict worker, in a child process


def connect(url: str | None = None, socket_timeout: float | None = 10) -> redis.Redis:
    """A Redis client that fails fast (seconds, not minutes) when the server is unreachable; for a
    Sentinel URL (jobs/connection.py), one that follows the primary through failovers.

    Pub/sub listeners pass ``socket_timeout=None``: they may rightly hear nothing for long.
    """
    return connection.client(
        url or get_settings().redis_url,
        socket_connect_timeout=2,
        socket_timeout=socket_timeout,
        health_check_interval=15,
        retry_on_timeout=False,
    )


def create_celery(url: str | None = None) -> Celery:
    """The Celery app: JSON only (never pickle), no result backend (job records hold results)."""
    settings = get_settings()
    broker, sentinel_options = connection.celery_broker(url or settings.redis_url)
    app = Celery("digits", broker=broker, set_as_current=False)
    if broker.startswith("redis://"):  # rediss:// and sentinel:// keep kombu's own transport
        app.conf.broker_transport = "jobs.transport:SharedClientTransport"
    visibility = settings.broker_visibility_timeout
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_accept_content=["json"],
        event_serializer="json",
        task_ignore_result=True,
        task_queues=tuple(Queue(name) for name in keys.QUEUES),
        task_default_queue=keys.PREDICT_QUEUE,
        task_routes={
            TRAIN_TASK: {"queue": keys.TRAIN_QUEUE},
            CHECK_TASK: {"queue": keys.PREDICT_QUEUE},
        },
        # Messages are acknowledged once handled; the tasks that must not be run again after a
        # crash (training) acknowledge on receipt.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        broker_transport_options={
            # Unacknowledged messages of a vanished worker come back after this many seconds...
            "visibility_timeout": visibility,
            # ... found by a sweep every few seconds (kombu's default sweeps every 100 s).
            "unacked_restore_interval": max(1, visibility // 4),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 2,
            "socket_timeout": 10,
            **sentinel_options,  # the primary's name, for a Sentinel URL
        },
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


def enqueue_training(app: Celery, job_id: str) -> None:
    """Send a training job's id; its parameters are in its record."""
    app.send_task(TRAIN_TASK, args=[job_id], queue=keys.TRAIN_QUEUE, task_id=job_id)


def enqueue_check(app: Celery, job_id: str) -> None:
    """Send a model check's job id; the version to check is in its record."""
    app.send_task(CHECK_TASK, args=[job_id], queue=keys.PREDICT_QUEUE, task_id=job_id)
