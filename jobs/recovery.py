"""Queue again the jobs whose message the broker lost.

Celery's Redis transport takes a message off the queue (BRPOP) and only then notes it as
unacknowledged; a worker killed between the two loses the message (celery/kombu#305). The job
record, not the message, is the source of truth: a job still queued long after submission,
whose message is neither in a queue nor unacknowledged, is sent again from its kept payload.
A duplicate that slips through is harmless: the first result written wins.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator

import redis
from celery import Celery

from jobs import keys, queue
from jobs.records import QUEUED

log = logging.getLogger(__name__)

LOCK = f"{keys.PREFIX}:recovery:lock"
SCAN_CHUNK = 1000


def requeue_lost(client: redis.Redis, app: Celery, older_than_s: float) -> list[str]:
    """Send again the jobs queued over ``older_than_s`` ago whose message is nowhere; return their ids.

    Any worker may call this now and then; a lock makes concurrent calls skip.
    """
    suspects = [i.decode() for i in client.zrangebyscore(keys.QUEUED_JOBS, "-inf", time.time() - older_than_s)]
    if not suspects or not client.set(LOCK, "1", nx=True, ex=60):
        return []
    try:
        in_flight = set(_job_ids_in_messages(client))
        lost = [job_id for job_id in suspects if job_id not in in_flight]
        return [job_id for job_id in lost if _send_again(client, app, job_id)]
    finally:
        client.delete(LOCK)


def _send_again(client: redis.Redis, app: Celery, job_id: str) -> bool:
    job_type, status, params = client.hmget(keys.job(job_id), "type", "status", "params")
    payload = client.get(keys.job_payload(job_id))
    if status != QUEUED.encode() or (job_type == b"predict" and payload is None):
        client.zrem(keys.QUEUED_JOBS, job_id)  # ended, expired, or beyond recovery
        return False
    client.zadd(keys.QUEUED_JOBS, {job_id: time.time()})  # give the new message its time
    if job_type == b"train":
        queue.enqueue_training(app, job_id, json.loads(params))
    else:
        queue.enqueue_predictions(app, [(job_id, payload.decode())])
    log.warning("job %s: its queue message was lost; queued again", job_id, extra={"job_id": job_id})
    return True


def _job_ids_in_messages(client: redis.Redis) -> Iterator[str]:
    """Every job id in a message waiting in a queue or held unacknowledged by a worker."""
    for name in (keys.PREDICT_QUEUE, keys.TRAIN_QUEUE):
        for start in range(0, client.llen(name), SCAN_CHUNK):
            for raw in client.lrange(name, start, start + SCAN_CHUNK - 1):
                yield from _job_ids(json.loads(raw))
    for _, raw in client.hscan_iter("unacked", count=SCAN_CHUNK):
        yield from _job_ids(json.loads(raw)[0])


def _job_ids(message: dict) -> Iterator[str]:
    task = message.get("headers", {}).get("task")
    body = message["body"]
    if message.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    args = json.loads(body)[0]
    if task == queue.PREDICT_TASK:
        yield from (job_id for job_id, _ in args[0])
    elif task == queue.TRAIN_TASK:
        yield args[0]
