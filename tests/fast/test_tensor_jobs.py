"""Tensor jobs (jobs/tensors.py) in Redis: an inference request is one record and one lane entry,
held to the same bounds as its images would be one by one, taken by images, given back whole."""

from __future__ import annotations

import numpy as np
import pytest

from jobs import keys, lanes, tensors
from jobs import records as rec

LANES = rec.Lanes(keys.PREDICT_QUEUE, keys.BULK_QUEUE, fast_pending=16)


def tensor_job(records: rec.JobRecords, count: int, client: str = "10.0.0.1", **options) -> str:
    payload = tensors.pack_pixels(np.zeros((count, 28, 28), np.uint8))
    fields = {"read": "digit", "tensor": tensors.PIXELS}
    created = records.create(
        "predict", fields=fields, client=client, images=[payload], lanes=LANES, images_per_job=count, listed=False,
        **options,
    )  # fmt: skip
    return created.ids[0]


def test_a_tensor_job_is_one_record_and_one_lane_entry_that_count_its_images(redis_client):
    records = rec.JobRecords(redis_client)
    job_id = tensor_job(records, 64)

    assert redis_client.lrange(keys.lane(keys.BULK_QUEUE), 0, -1) == [f"{job_id}:64".encode()]  # 64 > 16 pending
    assert records.pending("10.0.0.1") == 64 and records.pending_bytes("10.0.0.1") == 64 * 784
    assert redis_client.hget(keys.job(job_id), "images") == b"64"
    assert redis_client.zcard(keys.RECENT_JOBS) == 0  # nobody's to list
    [started] = records.start([job_id], "w1")
    assert started.tensor == tensors.PIXELS and len(tensors.unpack(started.tensor, started.image)) == 64

    result = {"label": [3] * 60 + [-1] * 4, "probabilities": [[0.1] * 10] * 64, "model_version": 1}
    assert records.finish([rec.Outcome(job_id, rec.SUCCEEDED, result=result)]) == [job_id]
    assert records.pending("10.0.0.1") == 0 and records.pending_bytes("10.0.0.1") == 0
    assert redis_client.hget(keys.METRICS_OUTCOMES, "predict:succeeded") == b"64"
    assert redis_client.hget(keys.METRICS_PREDICTIONS, "1") == b"60"  # the images with a digit
    assert records.get(job_id)["result"] == result


def test_the_pending_limit_counts_a_tensor_jobs_images(redis_client):
    records = rec.JobRecords(redis_client)
    limits = rec.PendingLimits(jobs=100)
    tensor_job(records, 64, limits=limits)
    with pytest.raises(rec.OverLimit) as refused:
        tensor_job(records, 64, limits=limits)
    assert (refused.value.limit, refused.value.outstanding) == ("jobs", 64)
    small = tensor_job(records, 8, client="10.0.0.2", limits=limits)
    assert redis_client.lrange(keys.lane(keys.PREDICT_QUEUE), 0, -1) == [f"{small}:8".encode()]


def test_a_worker_takes_a_batch_by_images_never_overtaking_within_the_lanes(redis_client):
    lanes.put(redis_client, keys.PREDICT_QUEUE, ["f1", "f2:200"])
    lanes.put(redis_client, keys.BULK_QUEUE, ["b1:100", "b2", "b3:1000"])
    reader = lanes.LaneReader(redis_client, keys.PREDICT_QUEUES)

    assert reader.take(256, 0.1) == [["f1", "f2:200"]]  # b1's 100 would pass 256: the bulk lane waits
    assert reader.take(256, 0.1) == [["b1:100", "b2"]]
    assert reader.take(256, 0.1) == [["b3:1000"]]  # the first is taken whatever it holds
    assert reader.take(256, 0.1) == []


def test_a_tensor_job_given_back_keeps_its_count_in_its_lane(redis_client):
    records = rec.JobRecords(redis_client)
    job_id = tensor_job(records, 64)
    assert lanes.LaneReader(redis_client, keys.PREDICT_QUEUES).take(256, 0.1) == [[f"{job_id}:64"]]
    records.start([job_id], "w1")

    assert lanes.give_back(records, [job_id], taken_by="w1") == [job_id]
    assert redis_client.lrange(keys.lane(keys.BULK_QUEUE), 0, -1) == [f"{job_id}:64".encode()]


def test_a_damaged_payload_is_refused_by_the_reader():
    with pytest.raises(ValueError):
        tensors.unpack(tensors.PIXELS, b"\x00" * 100)
    with pytest.raises(ValueError):
        tensors.unpack(tensors.IMAGE, tensors.pack_files([b"abc"])[:-1])
    assert tensors.unpack(tensors.IMAGE, tensors.pack_files([b"abc", b"", b"de"])) == [b"abc", b"", b"de"]


def test_a_tensor_job_a_worker_ended_counts_its_images_in_the_histograms_and_statistics(redis_client):
    records = rec.JobRecords(redis_client)
    job_id = tensor_job(records, 5)
    [started] = records.start([job_id], "w1")
    timings = {"preprocess_ms": 0.5, "predict_ms": 2.0, "batch_size": 5}
    result = {"label": [1] * 5, "probabilities": [[0.1] * 10] * 5, "model_version": 1, "timings": timings}
    outcome = rec.Outcome(job_id, rec.SUCCEEDED, result=result)
    assert records.finish([outcome], batch_size=5, started_at=[started.started_at], model_version=1) == [job_id]

    stats = {k.decode(): int(v) for k, v in redis_client.hgetall(keys.METRICS_MODEL_STATS).items()}
    assert stats["1:success:count"] == 5 and stats["1:executions"] == 1  # five requests, one model call
    assert stats["1:success:ns"] > 0 and stats["1:success:ns"] % 5 == 0  # each image waited as long
    waits = {k.decode(): float(v) for k, v in redis_client.hgetall(keys.METRICS_QUEUE_WAIT).items()}
    services = {k.decode(): float(v) for k, v in redis_client.hgetall(keys.METRICS_SERVICE_TIME).items()}
    lane = redis_client.hget(keys.job(job_id), "lane").decode()
    assert sum(n for key, n in waits.items() if key.startswith(f"{lane}:") and not key.endswith(":sum")) == 5
    assert sum(n for key, n in services.items() if key.startswith(f"{lane}:") and not key.endswith(":sum")) == 5
