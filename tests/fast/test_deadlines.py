"""Deadlines: a prediction that no worker has started by its deadline ends ``expired``, unread.

The rule, and the scripts that set and judge the deadline in Redis's clock, against a real Redis;
/v2 expiring its own jobs when it gives up, through the app. The whole service, with its worker
stopped: tests/service/test_deadlines_stack.py.
"""

from __future__ import annotations

import time

import pytest

from jobs import deadlines, keys
from jobs import records as rec


@pytest.mark.parametrize(
    ("given", "default_ms", "max_ms", "expected"),
    [
        (None, 0, 0, 0),  # no deadline anywhere
        (None, 500, 0, 500),  # the server's default stands in
        (0, 500, 0, 500),  # 0 is "none given", as Triton's clients mean it
        (100, 500, 0, 100),  # the request's own wins over the default
        (None, 0, 1000, 1000),  # no deadline becomes the maximum
        (5000, 0, 1000, 1000),  # a longer one is cut to it
        (200, 500, 1000, 200),
    ],
)
def test_the_timeout_a_submission_gets(given, default_ms, max_ms, expected):
    assert deadlines.timeout_ms(given, default_ms, max_ms) == expected


def test_the_deadline_is_set_in_redis_clock(redis_client):
    records = rec.JobRecords(redis_client)
    (job_id,) = records.create("predict", timeout_ms=1500).ids
    seconds, micros = redis_client.time()
    deadline = float(redis_client.hget(keys.job(job_id), "deadline"))
    assert abs(deadline - (seconds + micros / 1e6 + 1.5)) < 0.1
    assert records.get(job_id)["deadline"].endswith("Z")
    (no_deadline,) = records.create("predict").ids
    assert "deadline" not in records.get(no_deadline) and not redis_client.hexists(keys.job(no_deadline), "deadline")


def test_a_job_past_its_deadline_is_not_taken_and_its_image_is_not_handed_over(redis_client):
    records = rec.JobRecords(redis_client)
    late, in_time = records.create("predict", count=2, images=[b"late", b"in time"], timeout_ms=50, client="c").ids
    (no_deadline,) = records.create("predict", images=[b"any time"], client="c").ids
    time.sleep(0.1)
    (far,) = records.create("predict", images=[b"far"], timeout_ms=60_000, client="c").ids
    found = {job.job_id: job for job in records.start([late, in_time, no_deadline, far], "w1")}
    assert found[late].expired and not found[late].taken and found[late].image is None
    assert found[in_time].expired and found[in_time].image is None
    assert not found[no_deadline].expired and found[no_deadline].taken and found[no_deadline].image == b"any time"
    assert not found[far].expired and found[far].image == b"far"
    assert records.get(late)["status"] == "queued"  # not started: the caller ends it

    assert records.expire([late, in_time], deadlines.exceeded()) == [late, in_time]
    job = records.get(late)
    assert job["status"] == "expired" and job["started_at"] is None and job["error"]["code"] == "deadline_exceeded"
    assert not redis_client.exists(keys.job_image(late))  # let go of, as any ended job's
    assert records.pending("c") == 2  # the two that ended no longer count against their client
    assert redis_client.hget(keys.METRICS_OUTCOMES, "predict:expired") == b"2"
    assert records.expire([no_deadline], deadlines.exceeded()) == [no_deadline]  # a running job too, when given up on
    assert records.finish([rec.Outcome(no_deadline, rec.SUCCEEDED, result={"label": 1})]) == []  # first end wins


def test_v2_expires_its_job_when_it_gives_up_at_max_wait(redis_client):
    from web import create_app

    port = redis_client.connection_pool.connection_kwargs["port"]
    app = create_app({"REDIS_URL": f"redis://127.0.0.1:{port}/1", "MAX_WAIT_SECONDS": 1})  # and no worker
    body = {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [2, 28, 28], "data": [0] * 1568}]}
    answer = app.test_client().post("/v2/models/digits/infer", json=body)
    assert answer.status_code == 503 and answer.headers["Retry-After"] and "within 1 s" in answer.get_json()["error"]
    # One tensor job holding both images: its lane entry is '<id>:2'.
    entries = [e.decode() for e in redis_client.lrange(keys.lane(keys.PREDICT_QUEUE), 0, -1)]
    assert len(entries) == 1 and entries[0].endswith(":2")  # a worker that takes it ends it unread
    job_id = entries[0].rsplit(":", 1)[0]
    (record,) = rec.JobRecords(redis_client).get_many([job_id])
    assert record["status"] == "expired" and record["error"]["code"] == "deadline_exceeded"
    assert int(redis_client.hget(keys.METRICS_EXPIRED, keys.PREDICT_QUEUE) or 0) == 2  # counted as its images
    found = rec.JobRecords(redis_client).start([job_id], "w1")
    assert not any(job.taken for job in found)
