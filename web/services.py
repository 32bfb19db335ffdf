"""The app's connections, created once per app: Redis, job records, the model store, the Celery producer."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery
from flask import Flask, current_app

from jobs.queue import connect, create_celery
from jobs.records import JobRecords
from model.store import ModelStore
from web.waiting import JobWaiter


@dataclass
class Services:
    redis: redis.Redis
    records: JobRecords
    store: ModelStore
    celery: Celery
    waiter: JobWaiter


def init_app(app: Flask) -> None:
    url = app.config["REDIS_URL"]
    client = connect(url)
    app.extensions["digits"] = Services(
        redis=client,
        records=JobRecords(client, app.config["JOB_TTL_SECONDS"]),
        store=ModelStore(client),
        celery=create_celery(url),
        waiter=JobWaiter(lambda: connect(url, socket_timeout=None)),
    )


def services() -> Services:
    return current_app.extensions["digits"]
