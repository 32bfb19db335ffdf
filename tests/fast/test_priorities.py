"""Priorities: a request's priority chooses its lane, within the bounds that keep clients fair.

Priority 1 (Triton's highest) puts a client's jobs in the fast lane ahead of its own bulk backlog,
but never more than INTERACTIVE_PENDING of its jobs in the fast lane at once, and never past its
pending limits; 2 and beyond put them in the bulk lane; 0 or none, the lane its backlog says.
Against a real Redis, then through the job API and /v2 of an app (no worker: the jobs stay put).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from jobs import keys
from jobs import records as rec
from tests.conftest import png_bytes

FAST, BULK = keys.PREDICT_QUEUE, keys.BULK_QUEUE
SHARE = 4  # INTERACTIVE_PENDING in these tests


def lanes(priority: int = 0) -> rec.Lanes:
    return rec.Lanes(FAST, BULK, SHARE, priority)


def lane_of(records: rec.JobRecords, count: int = 1, priority: int = 0, client: str = "c", **kw) -> str:
    return records.create("predict", count, client=client, lanes=lanes(priority), **kw).lane


def test_priority_1_goes_ahead_of_the_clients_own_backlog_within_its_share_of_the_fast_lane(redis_client):
    records = rec.JobRecords(redis_client)
    assert lane_of(records, 10) == BULK  # a backlog: the bulk lane
    assert lane_of(records) == BULK  # by backlog, one more waits behind it
    assert lane_of(records, priority=1) == FAST  # priority 1 goes ahead of it
    assert lane_of(records, 3, priority=1) == FAST  # 4 of the client's jobs in the fast lane: its share
    assert lane_of(records, priority=1) == BULK  # a fifth would pass it: the bulk lane
    assert int(redis_client.get(keys.pending_fast("c"))) == SHARE
    assert lane_of(records, priority=1, client="other") == FAST  # shares are per client


def test_a_fast_lane_job_ending_frees_its_place_in_the_share(redis_client):
    records = rec.JobRecords(redis_client)
    lane_of(records, 10)
    first = records.create("predict", SHARE, client="c", lanes=lanes(1)).ids
    assert lane_of(records, priority=1) == BULK
    records.finish([rec.Outcome(first[0], rec.SUCCEEDED, result={"label": 1})])
    assert int(redis_client.get(keys.pending_fast("c"))) == SHARE - 1
    assert lane_of(records, priority=1) == FAST
    bulk_job = records.create("predict", client="c", lanes=lanes(2)).ids[0]
    records.finish([rec.Outcome(bulk_job, rec.SUCCEEDED, result={"label": 1})])
    assert int(redis_client.get(keys.pending_fast("c"))) == SHARE  # a bulk job's end frees no fast place


def test_a_tensor_job_takes_its_images_of_the_share_and_frees_them_at_its_end(redis_client):
    # The share counts images, as the client's pending jobs do: one job of 3 images is 3 of 4.
    records = rec.JobRecords(redis_client)
    lane_of(records, 10)
    (tensor_job,) = records.create("predict", client="c", lanes=lanes(1), images_per_job=3).ids
    assert int(redis_client.get(keys.pending_fast("c"))) == 3
    assert lane_of(records, priority=1, images_per_job=2) == BULK  # 3 + 2 would pass the share of 4
    assert lane_of(records, priority=1) == FAST  # 3 + 1 does not
    records.finish([rec.Outcome(tensor_job, rec.EXPIRED)])
    assert int(redis_client.get(keys.pending_fast("c"))) == 1


def test_priority_2_goes_in_the_bulk_lane_and_0_by_backlog(redis_client):
    records = rec.JobRecords(redis_client)
    assert lane_of(records, priority=2) == BULK  # no backlog, yet it asked to wait
    assert lane_of(records, priority=7) == BULK
    assert lane_of(records, client="quiet") == FAST
    assert not redis_client.exists(keys.pending_fast("c"))  # nothing of c's is in the fast lane


def test_priority_does_not_pass_the_pending_limits(redis_client):
    records = rec.JobRecords(redis_client)
    limits = rec.PendingLimits(jobs=10)
    lane_of(records, 10, limits=limits)
    with pytest.raises(rec.OverLimit):
        lane_of(records, priority=1, limits=limits)


# --- through the app --------------------------------------------------------------------------


@pytest.fixture
def app(redis_client):
    from web import create_app

    port = redis_client.connection_pool.connection_kwargs["port"]
    return create_app({"REDIS_URL": f"redis://127.0.0.1:{port}/1", "INTERACTIVE_PENDING": SHARE})


def lanes_of_batch(redis_client, answer) -> set[str]:
    ids = [job["job_id"] for job in answer.get_json()["jobs"]]
    return {redis_client.hget(keys.job(job_id), "lane").decode() for job_id in ids}


IMAGE = png_bytes(np.zeros((28, 28), np.uint8))


@pytest.mark.parametrize("how", ["query", "json", "form"])
def test_the_job_api_takes_a_priority_each_way(app, redis_client, how):
    client = app.test_client()
    backlog = client.post("/api/v1/predictions", json={"images": [base64.b64encode(IMAGE).decode()] * 10})
    assert lanes_of_batch(redis_client, backlog) == {BULK}
    if how == "query":
        answer = client.post("/api/v1/predictions?priority=1", json={"images": [base64.b64encode(IMAGE).decode()]})
    elif how == "json":
        answer = client.post("/api/v1/predictions", json={"images": [base64.b64encode(IMAGE).decode()], "priority": 1})
    else:
        answer = client.post("/api/v1/predictions", data={"priority": "1", "image": (io.BytesIO(IMAGE), "x.png")})
    assert answer.status_code == 202, answer.get_data(as_text=True)
    assert lanes_of_batch(redis_client, answer) == {FAST}


@pytest.mark.parametrize(
    ("query", "body"),
    [("priority=high", {}), ("priority=-1", {}), ("", {"priority": "1"}), ("priority=1", {"priority": 2})],
)
def test_a_bad_priority_is_refused_saying_so(app, query, body):
    answer = app.test_client().post(
        f"/api/v1/predictions?{query}", json={"images": [base64.b64encode(IMAGE).decode()], **body}
    )
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "invalid_priority", answer.get_data()


def test_v2_parameters_priority_chooses_the_lane(app, redis_client):
    client = app.test_client()
    body = {
        "inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 28, 28], "data": [0] * 784}],
        "parameters": {"priority": 2, "timeout": 1000},  # answered (503) once its 1 ms has passed
    }
    answer = client.post("/v2/models/digits/infer", json=body)
    assert answer.status_code == 503 and "deadline" in answer.get_json()["error"]
    (job_id,) = [i.decode() for i in redis_client.lrange(keys.lane(BULK), 0, -1)]  # the one tensor job
    assert redis_client.hget(keys.job(job_id), "lane").decode() == BULK
    assert redis_client.hget(keys.job(job_id), "status") == b"expired"
    bad = client.post("/v2/models/digits/infer", json={**body, "parameters": {"priority": "high"}})
    assert bad.status_code == 400 and "priority" in bad.get_json()["error"]
