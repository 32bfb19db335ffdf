"""The app's settings and connections, made once per app: Redis, job records, model store, Celery producer."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from celery import Celery
from flask import Flask, current_app

from jobs import memory
from jobs.feedback import FeedbackLimits, FeedbackStore
from jobs.model_store import ModelStore
from jobs.queue import connect, create_celery
from jobs.records import FinishedLimits, JobRecords
from jobs.replicas import ReplicaAck
from settings import Settings
from web import draining
from web.finished_batches import FinishedBatches
from web.waiting import JobWaiter

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    redis: redis.Redis
    records: JobRecords
    store: ModelStore
    celery: Celery
    waiter: JobWaiter
    feedback: FeedbackStore
    memory: memory.MemoryGauge
    drain: draining.Drain
    finished_batches: FinishedBatches


def init_app(app: Flask, settings: Settings) -> None:
    """Connect, and refuse to start (:class:`~jobs.memory.MemoryBudgetError`) when the caps on what
    Redis keeps add up past its maxmemory."""
    url = settings.redis_url
    client = connect(url)
    check_memory_budget(client, settings)
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
            client,
            settings.job_ttl_seconds,
            ReplicaAck(client, settings.replica_ack, settings.replica_ack_timeout_ms),
            FinishedLimits(settings.max_finished_jobs, settings.max_finished_per_client),
        ),
        store=ModelStore(client, settings.max_model_versions, settings.max_model_bytes),
        celery=create_celery(url),
        waiter=waiter,
        feedback=FeedbackStore(
            client,
            FeedbackLimits(
                settings.feedback_retention_seconds, settings.max_feedback_bytes, settings.max_corrections_per_client
            ),
        ),
        memory=memory.MemoryGauge(client, settings.redis_high_water),
        drain=drain,
        finished_batches=FinishedBatches(),
    )


def check_memory_budget(client: redis.Redis, settings: Settings) -> None:
    """Raise MemoryBudgetError when the caps do not fit Redis's maxmemory; a Redis that does not
    answer yet is not judged (the web starts, and answers 503 until it does)."""
    try:
        limit = memory.maxmemory(client)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        log.warning("Redis does not answer: its maxmemory is not checked against the caps")
        return
    caps = memory.Caps(
        settings.max_queued_bytes,
        settings.max_finished_jobs,
        settings.max_model_versions,
        settings.max_model_bytes,
        settings.max_feedback_bytes,
    )
    memory.check_budget(caps, limit, settings.redis_high_water)


def services() -> Services:
    return current_app.extensions["digits"]


def settings() -> Settings:
    """The settings of the app handling this request."""
    return current_app.extensions["digits"].settings
