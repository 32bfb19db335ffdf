"""The whole path for real: HTTP -> web -> Redis -> Celery worker with the CNN -> job record -> poll."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.conftest import TOKEN, png_bytes
from tests.service.helpers import form_session, submit, wait_for

ADMIN = {"Authorization": f"Bearer {TOKEN}"}

pytestmark = pytest.mark.slow


def test_hundred_genuine_mnist_images_through_the_api(stack, mnist):
    images = [png_bytes(x) for x in mnist.x_test[:100]]
    ids = submit(stack.web_url, images[:50]) + submit(stack.web_url, images[50:], as_json=True)
    jobs = [wait_for(stack.web_url, job_id) for job_id in ids]

    assert all(job["status"] == "succeeded" for job in jobs), [j for j in jobs if j["status"] != "succeeded"][:1]
    labels = np.array([job["result"]["label"] for job in jobs])
    correct = int((labels == mnist.y_test[:100]).sum())
    assert correct >= 97, f"{correct}/100 correct"
    for job in jobs:
        result = job["result"]
        assert len(result["probabilities"]) == 10 and abs(sum(result["probabilities"]) - 1) < 1e-3
        assert result["label"] == int(np.argmax(result["probabilities"]))
        assert result["model_version"] == 1
        assert job["created_at"] <= job["started_at"] <= job["finished_at"]


def test_the_html_form_shows_the_label_beside_the_image(stack, mnist):
    index = int(np.flatnonzero(mnist.y_test == 3)[0])
    session, csrf_token = form_session(stack.web_url)
    response = session.post(
        f"{stack.web_url}/predict",
        data={"csrf_token": csrf_token},
        files={"image": ("three.png", png_bytes(mnist.x_test[index], invert=True), "image/png")},
        headers={"Accept": "text/html"},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 303
    page_url = stack.web_url + response.headers["Location"]
    job_id = page_url.rsplit("/", 1)[1]
    wait_for(stack.web_url, job_id)
    page = requests.get(page_url, timeout=10).text
    assert re.search(r"Digit <strong>3</strong>", page), page
    assert "% sure" in page and 'http-equiv="refresh"' not in page
    assert 'alt="The 28 by 28 image the network saw"' in page
    # The upload itself is not kept once its job has ended (KEEP_UPLOADS is off by default).
    assert requests.get(f"{page_url}/upload", timeout=10).status_code == 404


def test_a_running_page_refreshes_itself(stack, mnist):
    session, csrf_token = form_session(stack.web_url)
    response = session.post(
        f"{stack.web_url}/predict",
        data={"csrf_token": csrf_token},
        files=[("image", (f"{i}.png", png_bytes(mnist.x_test[i]), "image/png")) for i in range(3)],
        allow_redirects=False,
        timeout=30,
    )
    listing = stack.web_url + response.headers["Location"]
    assert "/jobs?ids=" in listing
    for job_id in listing.split("ids=")[1].split(","):
        wait_for(stack.web_url, job_id)
    page = requests.get(listing, timeout=10).text
    assert page.count('data-status="succeeded"') == 3


def test_recent_jobs_are_listed_newest_first(stack, mnist):
    older = submit(stack.web_url, [png_bytes(mnist.x_test[0])])[0]
    newer = submit(stack.web_url, [png_bytes(mnist.x_test[1])])[0]
    wait_for(stack.web_url, newer)
    listed = requests.get(f"{stack.web_url}/api/v1/jobs", params={"limit": 2}, headers=ADMIN, timeout=10)
    jobs = listed.json()["jobs"]
    assert [job["id"] for job in jobs] == [newer, older]
    assert jobs[0]["status"] == "succeeded" and jobs[0]["result"]["label"] == 2


def test_unknown_job_is_404_not_pending(stack):
    for job_id in ["0" * 32, "not-a-job", "a" * 500]:
        response = requests.get(f"{stack.web_url}/api/v1/jobs/{job_id}", timeout=10)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_wait_returns_as_soon_as_the_job_ends(stack, mnist):
    (job_id,) = submit(stack.web_url, [png_bytes(mnist.x_test[0])])
    started = time.monotonic()
    job = requests.get(f"{stack.web_url}/api/v1/jobs/{job_id}", params={"wait": 20}, timeout=30).json()
    assert job["status"] == "succeeded" and job["result"]["label"] == 7
    assert time.monotonic() - started < 5


def test_a_training_job_runs_on_a_worker_and_stores_a_version(stack):
    response = requests.post(
        f"{stack.web_url}/api/v1/training-jobs",
        json={"arch": "seed", "epochs": 1, "train_limit": 2000, "augment": False},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    job = wait_for(stack.web_url, response.json()["job_id"], timeout=300)
    assert job["status"] == "succeeded", job
    assert job["type"] == "train" and job["progress"]["epoch"] == 1
    version = job["result"]["model_version"]
    card = requests.get(f"{stack.web_url}/api/v1/models/{version}", timeout=10).json()
    assert card["arch"] == "seed" and card["training_job_id"] == job["id"]
    assert 0.5 < card["test_accuracy"] <= 1 and card["active"] is False
    for field in ("epochs", "training_seconds", "created_at", "data_checksum", "confusion_matrix"):
        assert field in card


def test_a_batch_request_can_be_polled_as_one(stack, mnist):
    images = [png_bytes(x) for x in mnist.x_test[200:264]]
    response = requests.post(
        f"{stack.web_url}/api/v1/predictions",
        files=[("image", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)],
        timeout=30,
    )
    body = response.json()
    deadline = time.monotonic() + 60
    while True:
        batch = requests.get(stack.web_url + body["batch_url"], params={"wait": 10}, timeout=30).json()
        if batch["done"] or time.monotonic() > deadline:
            break
    assert batch["done"] and batch["total"] == 64 and batch["counts"] == {"succeeded": 64}
    assert [job["id"] for job in batch["jobs"]] == [job["job_id"] for job in body["jobs"]]
    labels = np.array([job["result"]["label"] for job in batch["jobs"]])
    assert (labels == mnist.y_test[200:264]).mean() >= 0.97
    assert requests.get(f"{stack.web_url}/api/v1/batches/{'0' * 32}", timeout=10).status_code == 404


def test_one_request_per_image_with_wait(stack, mnist):
    # The README's first example: the digit's record in the answer to the upload itself.
    files = [("image", (f"{i}.png", png_bytes(x), "image/png")) for i, x in enumerate(mnist.x_test[300:304])]
    answer = requests.post(f"{stack.web_url}/api/v1/predictions?wait=20", files=files, timeout=60)

    assert answer.status_code == 200, answer.text
    batch = answer.json()
    assert batch["done"] and batch["total"] == 4 and batch["counts"] == {"succeeded": 4}
    labels = [job["result"]["label"] for job in batch["jobs"]]
    assert (np.array(labels) == mnist.y_test[300:304]).sum() >= 3
    assert requests.get(f"{stack.web_url}/api/v1/batches/{batch['id']}", timeout=10).json()["jobs"] == batch["jobs"]


EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


@pytest.mark.parametrize(
    ("picture", "read", "shown"),
    [("seven.png", "digit", 7), ("three.png", "digit", 3), ("number.png", "number", "2026")],
)
def test_the_readme_pictures_are_read_as_it_shows(stack, picture, read, shown):
    # The README's curl examples, as written: one multipart field per picture, read=number for the number, ?wait=10.
    data = {"read": read} if read == "number" else None
    with open(EXAMPLES / picture, "rb") as image:
        answer = requests.post(
            f"{stack.web_url}/api/v1/predictions?wait=10", files={"image": image}, data=data, timeout=30
        )

    assert answer.status_code == 200, answer.text
    (job,) = answer.json()["jobs"]
    assert job["status"] == "succeeded" and job["read"] == read
    assert job["result"]["text" if read == "number" else "label"] == shown


def test_a_bad_wait_on_submit_is_refused_before_any_job_is_made(stack, mnist):
    recent = f"{stack.web_url}/api/v1/jobs?limit=200"
    before = len(requests.get(recent, headers=ADMIN, timeout=10).json()["jobs"])
    files = {"image": ("x.png", png_bytes(mnist.x_test[0]), "image/png")}
    answer = requests.post(f"{stack.web_url}/api/v1/predictions?wait=forever", files=files, timeout=10)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_wait"
    assert len(requests.get(recent, headers=ADMIN, timeout=10).json()["jobs"]) == before
