"""What a worker process holds follows from what it serves: a training-only worker loads no
prediction model and is no prediction capacity; a predict worker takes jobs from the lanes in its
main process, once, and on a warm shutdown records the batch in hand before it exits."""

from __future__ import annotations

import io
import json
import os
import signal
import time

import numpy as np
import pytest
import redis
import requests
from PIL import Image

from jobs import keys, workers
from stack.processes import PREDICT_QUEUES, Stack
from tests.conftest import OUTPUT, TOKEN
from tests.service.helpers import running_stack, submit, wait_for


def test_a_training_worker_loads_no_prediction_model_and_is_not_ready_capacity():
    with running_stack(OUTPUT / "test_worker_roles", workers={"train1": {"queues": "train"}}) as stack:
        ready = requests.get(f"{stack.web_url}/readyz", timeout=10)
        (trainer,) = workers.live(redis.Redis.from_url(stack.redis_url))
        log = (stack.log_dir / "train1.log").read_text()

    assert ready.status_code == 503 and ready.json()["status"] == "no_workers"
    assert [w["model_version"] for w in ready.json()["workers"]] == [None]  # listed, serving nothing
    assert trainer.queues == ("train",) and trainer.model_version is None and not trainer.predicts
    assert "serving model version" not in log
    assert trainer.rss_bytes < 400 * 2**20, "a training worker at rest holds no TensorFlow model"


def test_readiness_names_the_lane_that_no_worker_serves():
    """A worker started with -Q predict alone never takes the bulk lane's jobs: /readyz says so."""
    with running_stack(OUTPUT / "test_worker_roles_lanes", workers={"fast1": {"queues": keys.PREDICT_QUEUE}}) as stack:
        ready = requests.get(f"{stack.web_url}/readyz", timeout=10)
        metrics = requests.get(f"{stack.web_url}/metrics", timeout=10).text
        stack.start_worker("both1", queues=PREDICT_QUEUES)
        stack.wait_for_workers(2)
        deadline = time.monotonic() + 60
        while (after := requests.get(f"{stack.web_url}/readyz", timeout=10).json())["unserved_lanes"]:
            assert time.monotonic() < deadline, after  # the new worker has a model within a minute
            time.sleep(0.5)

    assert ready.status_code == 200 and ready.json()["status"] == "ready"  # the fast lane is served
    assert ready.json()["unserved_lanes"] == [keys.BULK_QUEUE]
    assert f'digits_lane_workers{{lane="{keys.BULK_QUEUE}"}} 0.0' in metrics
    assert f'digits_lane_workers{{lane="{keys.PREDICT_QUEUE}"}} 1.0' in metrics
    assert after["unserved_lanes"] == [] and after["status"] == "ready"


BUDGET_MS = 100  # a few images a batch: the work below takes several batches on any machine


def blank_noise_png(seed: int) -> bytes:
    """A valid image that takes tens of milliseconds to recognise (it comes out blank)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (600, 600, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def log_lines(stack: Stack, name: str) -> list[dict]:
    text = (stack.log_dir / f"{name}.log").read_text()
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["prefork", "solo"])  # prefork: what `celery worker` starts unless told
def test_a_predict_worker_consumes_in_its_main_process_once_and_records_its_batch_on_sigterm(pool, own_redis):
    server = own_redis()
    env = {"DIGITS_API_TOKEN": TOKEN, "PREDICT_BATCH_BUDGET_MS": str(BUDGET_MS)}
    stack = Stack(server.url, OUTPUT / f"test_worker_roles-sigterm-{pool}", env=env)
    try:
        stack.start_web()
        images = [blank_noise_png(seed) for seed in range(8)]
        ids = [job_id for _ in range(5) for job_id in submit(stack.web_url, images)]  # seconds of work
        main = stack.start_worker("w1", queues=PREDICT_QUEUES, pool=pool)
        client = redis.Redis.from_url(server.url)
        deadline = time.monotonic() + 120
        while b"running" not in [client.hget(keys.job(job_id), "status") for job_id in ids] or not workers.live(client):
            assert time.monotonic() < deadline and main.poll() is None, "w1 never took a batch"
            time.sleep(0.005)
        os.killpg(main.pid, signal.SIGTERM)  # a warm shutdown, as a supervisor asks for one
        asked = time.monotonic()
        (registered,) = workers.live(client)
        exit_code = main.wait(timeout=60)
        stopped_s = time.monotonic() - asked

        assert registered.pid == main.pid, "the lanes are served by the worker's main process"
        lines = log_lines(stack, "w1")
        consuming = [line for line in lines if line["message"].startswith("taking prediction jobs from")]
        assert [line["worker"] for line in consuming] == [registered.name], "one consumer, in the main process"
        if pool != "solo":
            assert any("solo pool" in line["message"] and line["level"] == "WARNING" for line in lines)

        states = [client.hmget(keys.job(job_id), "status", "worker") for job_id in ids]
        recorded = [job_id for job_id, (status, _) in zip(ids, states, strict=True) if status == b"succeeded"]
        left = [job_id for job_id in ids if job_id not in recorded]
        waiting = {i.decode() for lane in keys.PREDICT_QUEUES for i in client.lrange(keys.lane(lane), 0, -1)}
        assert recorded, "the batch in hand was not recorded"
        assert left, "w1 went on taking jobs after it was asked to stop"
        assert all(worker == registered.name.encode() for status, worker in states if status == b"succeeded")
        assert [client.hget(keys.job(job_id), "status") for job_id in left] == [b"queued"] * len(left)
        assert waiting == set(left), "every job w1 did not end waits in its lane again"
        assert exit_code == 0 and stopped_s < 2 * BUDGET_MS / 1000 + 10, (exit_code, stopped_s)

        stack.start_worker("w2", queues=PREDICT_QUEUES)  # the rest are served by the next worker
        assert {wait_for(stack.web_url, job_id)["status"] for job_id in ids} == {"succeeded"}
    finally:
        stack.stop_all()
