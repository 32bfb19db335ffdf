"""Tensor jobs (jobs/tensors.py) with real processes: a v2 request is one job, read as the job API
reads the same digits, and not lost or answered twice when its worker dies mid-batch."""

from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest
import redis
import requests

from jobs import keys
from jobs import records as rec
from stack.processes import PREDICT_QUEUES, Stack
from stack.redis_server import RedisServer
from tests.conftest import OUTPUT, TOKEN, png_bytes
from tests.service.helpers import web_only

pytestmark = pytest.mark.slow


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
