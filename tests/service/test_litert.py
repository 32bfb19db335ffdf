"""The LiteRT backend (the default): same answers as TensorFlow, and workers that never load
TensorFlow; the TensorFlow backend still serves when chosen."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from jobs import keys
from jobs.model_store import ModelStore
from model.runtimes.keras_predictor import KerasPredictor
from model.runtimes.litert import LiteRTPredictor, export
from model.shipped import SHIPPED_LITERT, SHIPPED_MODEL
from stack.processes import PREDICT_QUEUES, Stack
from tests.conftest import OUTPUT, png_bytes
from tests.service.helpers import submit, wait_for
from worker.model_holder import load_version


@pytest.mark.parametrize("flatbuffer", ["exported now", "shipped"])
def test_litert_export_matches_tensorflow_on_the_whole_test_set(mnist, flatbuffer):
    """An export made now, and the one shipped beside the model (it must be remade whenever the
    shipped model is: `make train` does both), read every test digit as TensorFlow does."""
    images = mnist.x_test.astype(np.float32) / 255
    reference = KerasPredictor.from_file(SHIPPED_MODEL).probabilities(images)
    data = export(SHIPPED_MODEL.read_bytes()) if flatbuffer == "exported now" else SHIPPED_LITERT.read_bytes()
    litert = LiteRTPredictor(data).probabilities(images)
    assert litert.shape == (10000, 10)
    assert np.array_equal(litert.argmax(axis=1), reference.argmax(axis=1))
    assert np.abs(litert - reference).max() < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["litert", "tensorflow"])
def test_a_worker_serves_on_either_backend_and_only_tensorflow_loads_tensorflow(mnist, backend, own_redis):
    server = own_redis()
    env = {} if backend == "litert" else {"MODEL_BACKEND": backend}  # LiteRT is the default
    stack = Stack(server.url, OUTPUT / f"test_litert_{backend}", env=env)
    try:
        stack.start_worker("w", queues=PREDICT_QUEUES)
        stack.start_web(workers=1)
        (name,) = stack.wait_for_workers(1)
        ids = submit(stack.web_url, [png_bytes(x) for x in mnist.x_test[:20]])
        labels = [wait_for(stack.web_url, i)["result"]["label"] for i in ids]
        assert (np.array(labels) == mnist.y_test[:20]).mean() >= 0.95

        client = redis.Redis.from_url(server.url)
        worker = client.hgetall(keys.worker(name))
        assert worker[b"backend"] == backend.encode()
        with open(f"/proc/{int(worker[b'pid'])}/maps") as maps:
            assert ("tensorflow" in maps.read()) == (backend == "tensorflow")
        # The shipped model's export was stored with it: no worker had to make one.
        assert client.get(keys.model_litert(1)) == SHIPPED_LITERT.read_bytes()
    finally:
        stack.stop_all()


@pytest.mark.slow
def test_a_version_stored_without_an_export_gets_one_on_first_load_kept_for_the_others(redis_client):
    store = ModelStore(redis_client)
    version = store.add(SHIPPED_MODEL.read_bytes(), {"arch": "deep", "note": "as a training job stores it"})
    assert store.litert_file(version) is None
    load_version(store, version, "litert", threads=1)
    assert store.litert_file(version) is not None
