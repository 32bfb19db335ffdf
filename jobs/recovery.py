"""Queue again the jobs whose place in a queue was lost, judged from the job records alone.

A worker takes job ids from a lane and only then marks them running (jobs/lanes.py); Celery's
Redis transport likewise takes a training message off its queue before noting it unacknowledged
(celery/kombu#305). A worker killed between the two loses the id or the message. The job record,
not the queue, is the source of truth: a job still queued long after it was sent is sent again
(lanes and messages carry only job ids; the image waits beside the record). A job that was
merely waiting in a long queue is sent twice, which is harmless: whichever comes first starts the
job, the first result written wins, and an id or message finding its job ended is dropped.
"""

from __future__ import annotations

import logging

from celery import Celery

from jobs import keys, lanes, queue
from jobs.records import QUEUED, JobRecords

log = logging.getLogger(__name__)

LOCK_S = 60


def requeue_lost(records: JobRecords, app: Celery, older_than_s: float) -> list[str]:
    """Send again the jobs still queued ``older_than_s`` after their message was sent; return their ids.

    Any worker may call this now and then; a lock makes concurrent calls skip.
    """
    suspects = records.queued_longer_than(older_than_s)
    if not suspects or not records.redis.set(keys.RECOVERY_LOCK, "1", nx=True, ex=LOCK_S):
        return []
    try:
        return _send_again(records, app, suspects)
    finally:
        records.redis.delete(keys.RECOVERY_LOCK)


def _send_again(records: JobRecords, app: Celery, job_ids: list[str]) -> list[str]:
    """Send again those of ``job_ids`` still queued (in order); forget the others."""
    pipe = records.redis.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hmget(keys.job(job_id), "type", "status")
    sent, predictions = [], []
    for job_id, (job_type, status) in zip(job_ids, pipe.execute(), strict=True):
        if status != QUEUED.encode():
            records.forget_queued(job_id)  # started, ended or expired meanwhile
            continue
        records.mark_sent(job_id)  # give the new message its time
        if job_type == b"train":
            queue.enqueue_training(app, job_id)
        elif job_type == b"check":
            queue.enqueue_check(app, job_id)
        else:
            predictions.append(job_id)
        sent.append(job_id)
        log.warning("job %s: still queued long after it was sent; sent again", job_id, extra={"job_id": job_id})
    lanes.give_back(records, predictions)
    return sent
