"""A model version is checked before it is served: one that fails (wrong output, NaN, too slow, too
much memory, too big a file) is refused with 409 and the reason, at upload and at activation; a
worker that starts with a broken active version serves the last good one and says so."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from jobs import workers
from jobs.model_store import ModelStore
from model.runtimes import keras_files
from model.shipped import SHIPPED_MODEL
from stack.processes import PREDICT_QUEUES
from tests.conftest import OUTPUT, TOKEN, png_bytes
from tests.service.helpers import running_stack, wait_for

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def fleet():
    env = {"CHECK_MAX_MS_PER_IMAGE": "1.0", "MAX_MODEL_BYTES": str(4 * 1024 * 1024)}
    with running_stack(OUTPUT / "test_model_checks", env=env, workers={"w1": {"queues": PREDICT_QUEUES}}) as stack:
        yield stack


def network(*hidden, output: int = 10, activation: str = "softmax", flatten: bool = True):
    import keras
    from keras import layers

    tail = [
        layers.Flatten() if flatten else layers.GlobalAveragePooling2D(),
        layers.Dense(output, activation=activation),
    ]
    return keras.Sequential([keras.Input((28, 28, 1)), *hidden, *tail])


def upload(stack, data: bytes):
    return requests.post(f"{stack.web_url}/api/v1/models", headers=AUTH, files={"file": ("m.keras", data)}, timeout=180)


def refused(response, says: str) -> None:
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "model_refused" and says in error["message"], error


def test_a_good_model_is_stored_with_its_check(fleet):
    answer = upload(fleet, SHIPPED_MODEL.read_bytes())
    assert answer.status_code == 201, answer.text
    check = answer.json()["check"]
    assert check["ok"] and check["accuracy"] > 0.98 and check["ms_per_image"] < 1


def test_models_that_would_harm_the_service_are_refused_at_upload(fleet):
    from keras import layers

    before = ModelStore(redis.Redis.from_url(fleet.redis_url)).versions()
    nan = network()
    nan.layers[-1].set_weights([np.full(w.shape, np.nan, np.float32) for w in nan.layers[-1].get_weights()])
    # About 4-5 ms per image on a 2-core machine, four times the limit (three such layers cost 2 ms:
    # too near it; six cost up to 16 ms, and the check then took 40 s).
    slow = network(*[layers.Conv2D(128, 3, padding="same", activation="relu") for _ in range(5)], flatten=False)
    hungry = network(layers.UpSampling2D(120), flatten=False)  # a few kB of file, gigabytes of activations
    harmful = {  # what the refusal says: the model
        "not (500, 10)": network(output=5),
        "not finite": nan,
        "do not sum to 1": network(output=10, activation="relu"),
        "right on 500 MNIST test digits": network(),  # untrained: guesses
        "ms per image": slow,
        "memory": hungry,
    }
    files = {says: keras_files.dump(model) for says, model in harmful.items()}
    # Two uploads at a time, as two admins might: the worker checks each in a child process on a
    # thread of its own, so the checks run side by side (a minute one after the other).
    with ThreadPoolExecutor(2) as uploads:
        answers = dict(zip(files, uploads.map(lambda data: upload(fleet, data), files.values()), strict=True))
    for says, answer in answers.items():
        refused(answer, says)
    assert ModelStore(redis.Redis.from_url(fleet.redis_url)).versions() == before  # none was kept

    big = upload(fleet, keras_files.dump(network(layers.Flatten(), layers.Dense(2560))))  # 2 M weights: 8 MB
    assert big.status_code == 413 and big.json()["error"]["code"] == "model_too_large", big.text


def test_a_version_that_fails_its_check_is_not_activated(fleet):
    store = ModelStore(redis.Redis.from_url(fleet.redis_url))
    broken = store.add(b"PK\x03\x04 not really a model", {"note": "stored behind the API's back"})
    answer = requests.post(f"{fleet.web_url}/api/v1/models/{broken}/activate", headers=AUTH, timeout=180)
    refused(answer, "does not load")
    assert store.active_version() == 1


def test_a_worker_started_on_a_broken_active_version_serves_the_last_good_one(mnist):
    with running_stack(OUTPUT / "test_model_checks_fallback", workers={"w1": {"queues": PREDICT_QUEUES}}) as stack:
        client = redis.Redis.from_url(stack.redis_url)
        store = ModelStore(client)
        broken = store.add(b"PK\x03\x04 not really a model", {"note": "activated behind the checks' back"})
        store.activate(broken)
        stack.stop("w1")
        stack.start_worker("w2", queues=PREDICT_QUEUES)  # starts with the broken version active
        deadline = time.monotonic() + 120
        while not [w for w in workers.live(client) if w.name.startswith("w2@") and w.predicts]:
            assert time.monotonic() < deadline, "w2 never served anything"
            time.sleep(0.2)
        admin = {"Authorization": f"Bearer {TOKEN}"}  # worker names are the admin's to see
        ready = requests.get(f"{stack.web_url}/readyz", headers=admin, timeout=10).json()
        accepted = requests.post(f"{stack.web_url}/api/v1/predictions", files={"image": png_bytes(mnist.x_test[0])})
        job = wait_for(stack.web_url, accepted.json()["jobs"][0]["job_id"])
        metrics = requests.get(f"{stack.web_url}/metrics", timeout=10).text
    (worker,) = [w for w in ready["workers"] if w["name"].startswith("w2@")]
    assert worker["model_version"] == "1" and f"active version {broken} cannot be loaded" in worker["problem"]
    assert job["status"] == "succeeded" and job["result"]["model_version"] == 1
    assert job["result"]["label"] == mnist.y_test[0]
    fallback = {
        sample.labels["worker"].split("@")[0]: sample.value
        for family in text_string_to_metric_families(metrics)
        if family.name == "digits_worker_model_fallback"
        for sample in family.samples
    }
    assert fallback["w2"] == 1.0
