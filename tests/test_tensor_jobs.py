"""Tensor jobs (jobs/tensors.py): an Open Inference Protocol request is one job, held to the same
bounds as its images would be one by one, read whole beside other jobs, and not lost or answered
twice when its worker dies."""

from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest
import redis
import requests

from jobs import keys, lanes, tensors
from jobs import records as rec
from stack.processes import PREDICT_QUEUES, Stack
from stack.redis_server import RedisServer
from tests.conftest import OUTPUT, TOKEN, png_bytes
from tests.helpers import web_only

LANES = rec.Lanes(keys.PREDICT_QUEUE, keys.BULK_QUEUE, fast_pending=16)


def tensor_job(records: rec.JobRecords, count: int, client: str = "10.0.0.1", **options) -> str:
    payload = tensors.pack_pixels(np.zeros((count, 28, 28), np.uint8))
    fields = {"read": "digit", "tensor": tensors.PIXELS}
    created = records.create(
        "predict", fields=fields, client=client, images=[payload], lanes=LANES, images_per_job=count, listed=False,
        **options,
    )  # fmt: skip
    return created.ids[0]


# --- In Redis alone ---------------------------------------------------------------------------


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

    assert reader.take(256, 0.1) == ["f1", "f2:200"]  # b1's 100 would pass 256: the bulk lane waits
    assert reader.take(256, 0.1) == ["b1:100", "b2"]
    assert reader.take(256, 0.1) == ["b3:1000"]  # the first is taken whatever it holds
    assert reader.take(256, 0.1) == []


def test_a_tensor_job_given_back_keeps_its_count_in_its_lane(redis_client):
    records = rec.JobRecords(redis_client)
    job_id = tensor_job(records, 64)
    assert lanes.LaneReader(redis_client, keys.PREDICT_QUEUES).take(256, 0.1) == [f"{job_id}:64"]
    records.start([job_id], "w1")

    assert lanes.give_back(records, [job_id], taken_by="w1") == [job_id]
    assert redis_client.lrange(keys.lane(keys.BULK_QUEUE), 0, -1) == [f"{job_id}:64".encode()]


def test_a_damaged_payload_is_refused_by_the_reader():
    with pytest.raises(ValueError):
        tensors.unpack(tensors.PIXELS, b"\x00" * 100)
    with pytest.raises(ValueError):
        tensors.unpack(tensors.IMAGE, tensors.pack_files([b"abc"])[:-1])
    assert tensors.unpack(tensors.IMAGE, tensors.pack_files([b"abc", b"", b"de"])) == [b"abc", b"", b"de"]


# --- With real processes ----------------------------------------------------------------------


def infer(base_url: str, digits: np.ndarray, timeout: float = 90) -> requests.Response:
    body = {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": list(digits.shape), "data": digits.tolist()}]}
    return requests.post(f"{base_url}/v2/models/digits/infer", json=body, timeout=timeout)


def outputs(answer: requests.Response) -> tuple[np.ndarray, np.ndarray]:
    assert answer.status_code == 200, answer.text
    found = {o["name"]: o for o in answer.json()["outputs"]}
    probabilities = np.asarray(found["probabilities"]["data"], np.float32).reshape(-1, 10)
    return np.asarray(found["label"]["data"]), probabilities


def job_records(client: redis.Redis) -> list[bytes]:
    return [key for key in client.scan_iter(keys.job("*")) if not key.endswith(b":image")]


def lane_entries(client: redis.Redis) -> list[bytes]:
    return [entry for lane in keys.PREDICT_QUEUES for entry in client.lrange(keys.lane(lane), 0, -1)]


@pytest.mark.slow
def test_a_64_image_request_is_one_job_and_answers_as_the_job_api_reads_the_same_digits(mnist):
    digits, truth = mnist.x_test[500:564], mnist.y_test[500:564]
    with web_only("test_tensor_jobs-one-job") as (stack, client):
        answers: list[requests.Response] = []
        request = threading.Thread(target=lambda: answers.append(infer(stack.web_url, digits)))
        request.start()
        deadline = time.monotonic() + 30
        while not lane_entries(client):  # no worker yet: the job waits where the test can see it
            assert time.monotonic() < deadline, "the request made no job"
            time.sleep(0.02)
        [record] = job_records(client)
        [entry] = lane_entries(client)
        job_id = record.decode().rsplit(":", 1)[1]
        assert entry == f"{job_id}:64".encode()
        assert client.hmget(record, "images", "tensor") == [b"64", b"pixels"]
        assert client.strlen(keys.job_image(job_id)) == 64 * 784  # the tensor, stored once

        stack.start_worker("w1", queues=PREDICT_QUEUES)
        request.join(timeout=120)
        labels, probabilities = outputs(answers[0])
        assert len(job_records(client)) == 1 and not client.exists(keys.job_image(job_id))

        # The job API reads each of the same digits as its own job (PNG files, decoded per image).
        files = [("image", (f"{i}.png", png_bytes(x), "image/png")) for i, x in enumerate(digits)]
        batch = requests.post(f"{stack.web_url}/api/v1/predictions?wait=30", files=files, timeout=60).json()
    results = [job["result"] for job in batch["jobs"]]
    assert labels.tolist() == [result["label"] for result in results]
    # The same to the 6 decimals kept, but for the model's own float noise between batches of different sizes.
    read_alone = np.asarray([result["probabilities"] for result in results], np.float32)
    assert np.abs(probabilities - read_alone).max() <= 2e-5, np.abs(probabilities - read_alone).max()
    assert (labels == truth).sum() >= 62


@pytest.mark.slow
def test_a_tensor_job_whose_worker_is_killed_mid_batch_is_read_again_once_and_answered_once(mnist):
    server = RedisServer().start()
    stack = Stack(server.url, OUTPUT / "test_tensor_jobs-killed", env={"DIGITS_API_TOKEN": TOKEN})
    try:
        stack.start_worker("w1", queues=PREDICT_QUEUES)
        stack.start_web()
        stack.wait_for_workers(1)
        client = redis.Redis.from_url(server.url)
        digits = mnist.x_test[:1000]
        answers: list[requests.Response] = []
        request = threading.Thread(target=lambda: answers.append(infer(stack.web_url, digits)))
        notices = client.pubsub(ignore_subscribe_messages=True)
        notices.subscribe(keys.JOBS_FINISHED_CHANNEL)
        request.start()

        deadline = time.monotonic() + 60
        while True:  # kill w1 while it holds the job, before it records it
            found = [client.hmget(record, "status", "worker", "deliveries") for record in job_records(client)]
            if found and found[0][0] == b"running" and found[0][1].startswith(b"w1@"):
                stack.stop("w1", signal.SIGKILL)
                break
            assert time.monotonic() < deadline and not answers, "w1 was never seen holding the job"
            time.sleep(0.002)
        stack.start_worker("w2", queues=PREDICT_QUEUES)  # takes it over once w1 falls silent
        request.join(timeout=120)

        labels, _ = outputs(answers[0])
        assert (labels == mnist.y_test[:1000]).sum() >= 980
        [record] = job_records(client)
        status, worker, deliveries = client.hmget(record, "status", "worker", "deliveries")
        assert (status, int(deliveries)) == (b"succeeded", 2) and worker.startswith(b"w2@")
        announced, quiet_from = [], time.monotonic() + 2
        while time.monotonic() < quiet_from:  # every notice sent so far (None: a subscription's own, or none)
            if message := notices.get_message(timeout=0.2):
                announced += rec.FinishedNotice.parse(message["data"]).ids
        assert announced == [record.decode().rsplit(":", 1)[1]]  # answered once
        assert lane_entries(client) == [] and client.zcard(keys.RUNNING_JOBS) == 0
    finally:
        stack.stop_all()
        server.close()
