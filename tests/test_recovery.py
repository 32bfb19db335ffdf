"""Lost queue messages are sent again from the job's kept payload; messages still around are not."""

from __future__ import annotations

import json
import time

from jobs import keys, queue
from jobs import records as rec
from jobs.recovery import requeue_lost


def _message_ids(client, name: str) -> list[str]:
    from jobs.recovery import _job_ids

    return [job_id for raw in client.lrange(name, 0, -1) for job_id in _job_ids(json.loads(raw))]


def test_a_job_whose_message_vanished_is_queued_again_once(redis_client, redis_server):
    app = queue.create_celery(redis_server.url.replace("/0", "/1"))
    records = rec.JobRecords(redis_client)
    lost, waiting = records.create("predict", count=2, payloads=["aGVsbG8=", "d29ybGQ="])
    queue.enqueue_predictions(app, [(waiting, "d29ybGQ=")])  # lost's message never made it

    assert requeue_lost(redis_client, app, older_than_s=60) == []  # too young to suspect
    time.sleep(0.05)
    assert requeue_lost(redis_client, app, older_than_s=0.01) == [lost]
    assert sorted(_message_ids(redis_client, keys.PREDICT_QUEUE)) == sorted([lost, waiting])

    # A message a worker holds unacknowledged is not lost either.
    raw = redis_client.rpop(keys.PREDICT_QUEUE)
    redis_client.hset("unacked", "tag", json.dumps([json.loads(raw), "", keys.PREDICT_QUEUE]))
    time.sleep(0.05)
    assert requeue_lost(redis_client, app, older_than_s=0.01) == []


def test_started_or_ended_jobs_are_never_sent_again(redis_client, redis_server):
    app = queue.create_celery(redis_server.url.replace("/0", "/1"))
    records = rec.JobRecords(redis_client)
    started, ended = records.create("predict", count=2, payloads=["YQ==", "Yg=="])
    records.start([started], "w")
    records.finish([rec.Outcome(ended, "succeeded", result={})])
    assert not redis_client.exists(keys.job_payload(ended))  # the payload goes with the job
    time.sleep(0.05)
    assert requeue_lost(redis_client, app, older_than_s=0.01) == []
    assert redis_client.llen(keys.PREDICT_QUEUE) == 0


def test_a_lost_training_message_is_sent_again_with_its_parameters(redis_client, redis_server):
    app = queue.create_celery(redis_server.url.replace("/0", "/1"))
    records = rec.JobRecords(redis_client)
    (job_id,) = records.create("train", fields={"params": {"arch": "seed", "epochs": 1}})
    time.sleep(0.05)
    assert requeue_lost(redis_client, app, older_than_s=0.01) == [job_id]
    assert _message_ids(redis_client, keys.TRAIN_QUEUE) == [job_id]
