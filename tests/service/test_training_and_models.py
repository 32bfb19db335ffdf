"""Training jobs and model versions through the HTTP API, on workers that share only Redis.

Two predict workers with their own hostnames and one train worker, as separate processes.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import requests

from model.shipped import SHIPPED_MODEL
from stack.processes import PREDICT_QUEUES, Stack
from tests.conftest import OUTPUT, TINY_MODELS_SERVED, TOKEN, png_bytes
from tests.service.helpers import running_stack, submit, wait_for

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def fleet():
    predict, train = {"queues": PREDICT_QUEUES}, {"queues": "train"}
    workers = {"predict1": predict, "predict2": predict, "train1": train}
    with running_stack(OUTPUT / "test_training_and_models", env=TINY_MODELS_SERVED, workers=workers) as stack:
        yield stack


def api(stack: Stack, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{stack.web_url}/api/v1{path}", timeout=30, **kwargs)


def start_training(stack: Stack, **params) -> str:
    response = api(stack, "POST", "/training-jobs", json=params, headers=AUTH)
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def activate(stack: Stack, version: int) -> None:
    response = api(stack, "POST", f"/models/{version}/activate", headers=AUTH)
    assert response.status_code == 200, response.text


def serving_versions(stack: Stack) -> dict[str, str]:
    """Model version per predict worker, as the workers themselves report it."""
    workers = requests.get(f"{stack.web_url}/readyz", headers=AUTH, timeout=10).json()["workers"]  # names: the admin's
    return {w["name"].split(":")[0]: w["model_version"] for w in workers if w["name"].startswith("predict")}


# A version uploaded as .keras is exported to LiteRT by the first worker that loads it (a child
# process that imports TensorFlow): measured 10 s on an AVX2-only 2-core machine with nothing else
# running.
SWITCH_TIMEOUT_S = 60


def wait_until_serving(stack: Stack, version: int, timeout: float = SWITCH_TIMEOUT_S) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        versions = serving_versions(stack)
        if len(versions) == 2 and set(versions.values()) == {str(version)}:
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"workers still serve {serving_versions(stack)}, not {version}")


def predicted_versions(stack: Stack, mnist, count: int = 20) -> set[int]:
    jobs = [wait_for(stack.web_url, i) for i in submit(stack.web_url, [png_bytes(x) for x in mnist.x_test[:count]])]
    assert all(job["status"] == "succeeded" for job in jobs)
    return {job["result"]["model_version"] for job in jobs}


def test_activation_and_rollback_reach_every_worker(fleet, mnist):
    assert predicted_versions(fleet, mnist) == {1}
    upload = api(
        fleet, "POST", "/models", headers=AUTH,
        files={"file": ("m.keras", SHIPPED_MODEL.read_bytes())}, data={"card": '{"note": "same weights"}'},
    )  # fmt: skip
    assert upload.status_code == 201, upload.text
    version = upload.json()["version"]
    assert version == 2 and upload.json()["note"] == "same weights"

    activate(fleet, version)
    switch_seconds = wait_until_serving(fleet, version)
    assert predicted_versions(fleet, mnist) == {version}

    activate(fleet, 1)  # roll back
    wait_until_serving(fleet, 1)
    assert predicted_versions(fleet, mnist) == {1}
    print(f"both workers switched {switch_seconds:.1f} s after activation")

    # A version named in the inference protocol's path reads the request, the active one the rest
    # (a version other than the active one: with the admin token, which the test's AUTH is).
    pixels = {
        "inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [4, 28, 28], "data": mnist.x_test[:4].tolist()}]
    }
    for named in (version, 1):
        url = f"{fleet.web_url}/v2/models/digits/versions/{named}/infer"
        answer = requests.post(url, json=pixels, headers=AUTH, timeout=60)
        assert answer.status_code == 200 and answer.json()["model_version"] == str(named), answer.text
    assert predicted_versions(fleet, mnist) == {1}


def test_training_reports_progress_every_epoch_and_stores_a_version(fleet):
    job_id = start_training(fleet, arch="seed", epochs=2, train_limit=3000, augment=False)
    seen_running = []
    while (job := api(fleet, "GET", f"/jobs/{job_id}").json())["status"] in ("queued", "running"):
        if job["status"] == "running" and job.get("progress"):
            seen_running.append(job["progress"])
        time.sleep(0.2)
    assert job["status"] == "succeeded", job
    assert seen_running, "no progress was visible while the job ran"
    assert {"epoch", "epochs", "batch", "batches", "elapsed_s", "eta_s"} <= set(seen_running[-1])
    history = job["progress"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history[0])

    version = job["result"]["model_version"]
    card = api(fleet, "GET", f"/models/{version}").json()
    assert card["training_job_id"] == job_id and card["hyperparameters"]["epochs"] == 2
    assert len(card["confusion_matrix"]) == 10 and sum(map(sum, card["confusion_matrix"])) == 10000
    assert job["result"]["activated"] is False
    listed = api(fleet, "GET", "/models").json()
    assert version in [c["version"] for c in listed["models"]] and listed["active_version"] == 1
    download = api(fleet, "GET", f"/models/{version}/file")
    assert download.status_code == 200 and len(download.content) == card["file_bytes"]


def test_a_job_without_parameters_trains_the_fast_recipe(fleet):
    """What the Train page and digits train send by default (on fewer images: the shape, not the time)."""
    job = wait_for(fleet.web_url, start_training(fleet, train_limit=2000), timeout=300)
    assert job["status"] == "succeeded", job
    assert {"model_version", "test_accuracy", "activated", "card"} <= set(job["result"])
    hyperparameters = job["result"]["card"]["hyperparameters"]
    assert (hyperparameters["recipe"], hyperparameters["arch"], hyperparameters["epochs"]) == ("fast", "compact", 2)
    assert hyperparameters["augment"] is True
    assert 0 < job["progress"]["fraction"] <= 1


def test_if_better_keeps_the_better_active_model(fleet):
    job = wait_for(fleet.web_url, start_training(fleet, arch="seed", epochs=1, train_limit=1000, activate="if-better"))
    assert job["status"] == "succeeded" and job["result"]["activated"] is False
    assert api(fleet, "GET", "/models").json()["active_version"] == 1


def test_a_cancelled_training_job_stops_and_says_so(fleet):
    before = len(api(fleet, "GET", "/models").json()["models"])
    job_id = start_training(fleet, arch="default", epochs=50, augment=True)
    deadline = time.monotonic() + 60
    while not api(fleet, "GET", f"/jobs/{job_id}").json().get("progress"):
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.2)
    asked = time.monotonic()
    response = api(fleet, "DELETE", f"/jobs/{job_id}", headers=AUTH)
    assert response.status_code == 202
    job = wait_for(fleet.web_url, job_id, timeout=30)
    assert job["status"] == "cancelled" and job["error"]["code"] == "cancelled"
    assert time.monotonic() - asked < 10
    # Its record stops where it stopped: no ETA, no batch it did not train, no epoch that never ended.
    progress = job["progress"]
    assert progress["stopped"] is True and progress["eta_s"] is None and progress["fraction"] is None, progress
    assert progress["epoch"] == 1 and progress["batch"] < progress["batches"], progress
    assert progress["history"] == [], progress
    assert f"at batch {progress['batch']} of {progress['batches']}" in job["error"]["message"], job["error"]
    assert len(api(fleet, "GET", "/models").json()["models"]) == before


def test_cancel_needs_the_token(fleet):
    response = api(fleet, "DELETE", f"/jobs/{'0' * 32}")
    assert response.status_code == 401


def test_a_running_training_job_does_not_hold_up_predictions(fleet, mnist):
    job_id = start_training(fleet, arch="default", epochs=3, augment=True)
    while api(fleet, "GET", f"/jobs/{job_id}").json()["status"] != "running":
        time.sleep(0.2)
    ids = submit(fleet.web_url, [png_bytes(x) for x in mnist.x_test[:20]])
    jobs = [wait_for(fleet.web_url, i, timeout=60) for i in ids]
    assert all(job["status"] == "succeeded" for job in jobs)
    assert api(fleet, "GET", f"/jobs/{job_id}").json()["status"] == "running"
    api(fleet, "DELETE", f"/jobs/{job_id}", headers=AUTH)
    assert wait_for(fleet.web_url, job_id, timeout=60)["status"] == "cancelled"


@pytest.mark.parametrize(("arch", "floor"), [("logreg", 0.8), ("forest", 0.85)])
def test_classic_models_train_and_serve(fleet, mnist, arch, floor):
    job = wait_for(fleet.web_url, start_training(fleet, arch=arch, epochs=2, train_limit=5000), timeout=300)
    assert job["status"] == "succeeded", job
    version = job["result"]["model_version"]
    card = api(fleet, "GET", f"/models/{version}").json()
    assert card["framework"] == "scikit-learn" and card["format"] == "skops"
    assert card["test_accuracy"] > floor
    assert [h["epoch"] for h in job["progress"]["history"]] == [1, 2]

    activate(fleet, version)
    wait_until_serving(fleet, version)
    ids = submit(fleet.web_url, [png_bytes(x) for x in mnist.x_test[:50]])
    results = [wait_for(fleet.web_url, i)["result"] for i in ids]
    assert {r["model_version"] for r in results} == {version}
    correct = np.mean([r["label"] == y for r, y in zip(results, mnist.y_test[:50], strict=True)])
    assert correct > floor - 0.1
    activate(fleet, 1)
    wait_until_serving(fleet, 1)


def test_model_management_rejects_bad_uploads_and_deleting_the_active_version(fleet):
    not_a_model = api(fleet, "POST", "/models", headers=AUTH, files={"file": ("x.keras", b"not a zip")})
    assert not_a_model.status_code == 415
    assert api(fleet, "POST", "/models", files={"file": ("x.keras", b"x")}).status_code == 401
    active = api(fleet, "DELETE", "/models/1", headers=AUTH)
    assert active.status_code == 409 and active.json()["error"]["code"] == "active_version"
