"""Jobs whose lane entry or queue message was lost are sent again, judged from the job records
alone; started or ended jobs never are."""

from __future__ import annotations

import base64
import json
import time

from jobs import keys, queue
from jobs import records as rec
from jobs.recovery import requeue_lost


def _message_ids(client, name: str) -> list[str]:
    """The job ids of the messages waiting in a queue (kombu's message format, read here in the test only)."""
    ids = []
    for raw in client.lrange(name, 0, -1):
        message = json.loads(raw)
        body = json.loads(base64.b64decode(message["body"]))
        ids += body[0][0] if isinstance(body[0][0], list) else [body[0][0]]
    return ids


def test_a_job_still_queued_long_after_it_was_sent_is_sent_again_once(redis_client, redis_server):
    app = queue.create_celery(redis_server.url.replace("/0", "/1"))
    records = rec.JobRecords(redis_client)
    lanes = rec.Lanes(keys.PREDICT_QUEUE, keys.BULK_QUEUE, 16)
    (lost,) = records.create("predict", images=[b"image"], client="10.0.0.1", lanes=lanes).ids
    assert redis_client.lpop(keys.lane(keys.PREDICT_QUEUE)) == lost.encode()  # taken by a worker that then died

    assert requeue_lost(records, app, older_than_s=60) == []  # too young to suspect
    time.sleep(0.05)
    assert requeue_lost(records, app, older_than_s=0.01) == [lost]
    assert redis_client.lrange(keys.lane(keys.PREDICT_QUEUE), 0, -1) == [lost.encode()]  # back in its lane
    assert requeue_lost(records, app, older_than_s=1) == []  # the new entry gets its time
    assert redis_client.get(keys.job_image(lost)) == b"image"  # the entry points at the image, kept


def test_started_or_ended_jobs_are_never_sent_again(redis_client, redis_server):
    app = queue.create_celery(redis_server.url.replace("/0", "/1"))
    records = rec.JobRecords(redis_client)
    started, ended = records.create("predict", count=2, images=[b"a", b"b"]).ids
    records.start([started], "w")
    records.finish([rec.Outcome(ended, "succeeded", result={})])
    assert not redis_client.exists(keys.job_image(ended))  # the image goes with the job
    time.sleep(0.05)
    assert requeue_lost(records, app, older_than_s=0.01) == []
    assert redis_client.llen(keys.lane(keys.PREDICT_QUEUE)) == 0


def test_a_lost_training_message_is_sent_again_as_its_id(redis_client, redis_server):
    app = queue.create_celery(redis_server.url.replace("/0", "/1"))
    records = rec.JobRecords(redis_client)
    (job_id,) = records.create("train", fields={"params": {"arch": "seed", "epochs": 1}}).ids
    time.sleep(0.05)
    assert requeue_lost(records, app, older_than_s=0.01) == [job_id]
    assert _message_ids(redis_client, keys.TRAIN_QUEUE) == [job_id]
