"""The LiteRT backend: same answers as TensorFlow, and workers that never load TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from jobs import keys
from model.litert import LiteRTPredictor, export
from model.predictor import Predictor
from model.store import SHIPPED_MODEL
from stack.processes import PREDICT_QUEUES, Stack
from stack.redis_server import RedisServer
from tests.conftest import OUTPUT, png_bytes
from tests.helpers import submit, wait_for


def test_litert_export_matches_tensorflow_on_the_whole_test_set(mnist):
    images = mnist.x_test.astype(np.float32) / 255
    reference = Predictor.from_file(SHIPPED_MODEL).probabilities(images)
    litert = LiteRTPredictor(export(SHIPPED_MODEL.read_bytes())).probabilities(images)
    assert litert.shape == (10000, 10)
    assert np.array_equal(litert.argmax(axis=1), reference.argmax(axis=1))
    assert np.abs(litert - reference).max() < 1e-4


@pytest.mark.slow
def test_a_litert_worker_serves_without_tensorflow(mnist):
    server = RedisServer().start()
    stack = Stack(server.url, OUTPUT / "test_litert", env={"MODEL_BACKEND": "litert"})
    try:
        stack.start_worker("lite", queues=PREDICT_QUEUES)
        stack.start_web(workers=1)
        (name,) = stack.wait_for_workers(1)
        ids = submit(stack.web_url, [png_bytes(x) for x in mnist.x_test[:20]])
        labels = [wait_for(stack.web_url, i)["result"]["label"] for i in ids]
        assert (np.array(labels) == mnist.y_test[:20]).mean() >= 0.95

        worker = redis.Redis.from_url(server.url).hgetall(keys.worker(name))
        assert worker[b"backend"] == b"litert"
        with open(f"/proc/{int(worker[b'pid'])}/maps") as maps:
            assert "tensorflow" not in maps.read(), "the LiteRT worker process loaded TensorFlow"
        # The export made on first load is kept for the other workers.
        assert redis.Redis.from_url(server.url).exists("digits:model:1:litert")
    finally:
        stack.stop_all()
        server.close()
