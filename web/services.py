"""The app's settings and connections, made once per app: Redis, job records, model store, Celery producer."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery
from flask import Flask, current_app

from jobs.feedback import FeedbackStore
from jobs.model_store import ModelStore
from jobs.queue import connect, create_celery
from jobs.records import JobRecords
from jobs.replicas import ReplicaAck
from settings import Settings
from web import draining
from web.waiting import JobWaiter


@dataclass
class Services:
    settings: Settings
    redis: redis.Redis
    records: JobRecords
    store: ModelStore
    celery: Celery
    waiter: JobWaiter
    feedback: FeedbackStore
    drain: draining.Drain


def init_app(app: Flask, settings: Settings) -> None:
    url = settings.redis_url
    client = connect(url)
    waiter = JobWaiter(
        lambda: connect(url, socket_timeout=None), settings.max_waits_per_process, settings.max_waits_per_client
    )
    drain = draining.init_app(app)
    drain.on_close(waiter.close)
    app.extensions["digits"] = Services(
        settings=settings,
        redis=client,
        # Work is accepted once a replica has it, when REPLICA_ACK says so (jobs/replicas.py).
        records=JobRecords(
            client, settings.job_ttl_seconds, ReplicaAck(client, settings.replica_ack, settings.replica_ack_timeout_ms)
        ),
        store=ModelStore(client, settings.max_model_versions, settings.max_model_bytes),
        celery=create_celery(url),
        waiter=waiter,
        feedback=FeedbackStore(client, settings.feedback_retention_seconds, settings.max_feedback_bytes),
        drain=drain,
    )


def services() -> Services:
    return current_app.extensions["digits"]


def settings() -> Settings:
    """The settings of the app handling this request."""
    return current_app.extensions["digits"].settings
