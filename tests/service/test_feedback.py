"""Corrections: given over HTTP for real predictions, kept beyond their jobs, listed, exported as
MNIST IDX, deleted, counted in /metrics; and every bad request refused with nothing stored."""

from __future__ import annotations

import base64
import gzip
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import redis
import requests
from PIL import Image

from client.errors import RequestRefused
from client.service import DigitsClient
from jobs import keys
from jobs import records as rec
from model.idx import read_idx
from tests.conftest import TOKEN, png_bytes
from tests.service.helpers import submit, wait_for

ADMIN = {"Authorization": f"Bearer {TOKEN}"}
DIGITS = Path(sys.executable).parent / "digits"


def png_pixels(encoded: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))))


@pytest.fixture(scope="module")
def predicted(stack, mnist) -> list[dict]:
    """Ten real predictions of MNIST test digits 0..9, ended."""
    indices = [int(np.flatnonzero(mnist.y_test == digit)[0]) for digit in range(10)]
    ids = submit(stack.web_url, [png_bytes(mnist.x_test[i]) for i in indices])
    return [wait_for(stack.web_url, job_id) for job_id in ids]


@pytest.fixture
def clean(stack):
    """No corrections before or after the test."""
    requests.delete(f"{stack.web_url}/api/v1/feedback", headers=ADMIN, timeout=10).raise_for_status()
    yield
    requests.delete(f"{stack.web_url}/api/v1/feedback", headers=ADMIN, timeout=10).raise_for_status()


def feedback(stack, job_id: str, body) -> requests.Response:
    return requests.post(f"{stack.web_url}/api/v1/jobs/{job_id}/feedback", json=body, timeout=10)


def listing(stack) -> dict:
    answer = requests.get(f"{stack.web_url}/api/v1/feedback", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.slow
def test_a_correction_is_kept_replaced_listed_exported_and_deleted(stack, predicted, clean):
    first, second = predicted[3], predicted[7]
    assert first["result"]["label"] == 3 and second["result"]["label"] == 7  # the shipped model reads these

    kept = feedback(stack, first["id"], {"label": 5})
    assert kept.status_code == 201, kept.text
    body = kept.json()
    assert (body["label"], body["predicted"], body["model_version"]) == (5, 3, 1)
    assert body["corrected"] is True and body["replaced"] is False
    again = feedback(stack, first["id"], {"label": 8}).json()
    assert again["replaced"] is True and again["label"] == 8
    assert feedback(stack, second["id"], {"label": 7}).json()["corrected"] is False  # a confirmation

    listed = listing(stack)
    assert listed["total"] == 2 and listed["corrected"] == 1
    assert listed["counts"]["8"] == 1 and listed["counts"]["7"] == 1 and listed["counts"]["5"] == 0
    assert listed["confusion"][8][3] == 1 and listed["confusion"][7][7] == 1
    assert sum(map(sum, listed["confusion"])) == 2
    assert listed["by_model_version"] == {"1": {"corrected": 1, "confirmed": 1}}
    assert [c["job_id"] for c in listed["corrections"]] == [second["id"], first["id"]]  # newest first
    shown = [listed["corrections"][1]["image_png"], first["result"]["input_png"]]
    assert np.array_equal(*map(png_pixels, shown))  # what the network saw (the files may differ in encoding)

    export = requests.get(f"{stack.web_url}/api/v1/feedback/export", timeout=10)
    assert export.status_code == 200 and export.headers["Content-Type"] == "application/x-tar"
    folder = Path(stack.log_dir) / "export"
    with tarfile.open(fileobj=io.BytesIO(export.content)) as tar:
        tar.extractall(folder, filter="data")
    images = read_idx(folder / "feedback-images-idx3-ubyte.gz")  # the project's MNIST loader...
    labels = read_idx(folder / "feedback-labels-idx1-ubyte.gz")
    assert images.shape == (2, 28, 28) and labels.tolist() == [8, 7]  # oldest first
    assert read_idx(folder / "feedback-predicted-idx1-ubyte.gz").tolist() == [3, 7]
    raw = gzip.decompress((folder / "feedback-labels-idx1-ubyte.gz").read_bytes())  # ...and by hand
    assert raw[:8] == b"\x00\x00\x08\x01\x00\x00\x00\x02" and list(raw[8:]) == [8, 7]
    assert images[0].max() > 200 and images[0][0, 0] == 0  # light ink on dark, like MNIST
    assert requests.get(f"{stack.web_url}/api/v1/feedback/export?split=nope", timeout=10).status_code == 400

    url = f"{stack.web_url}/api/v1/feedback/{first['id']}"
    assert requests.delete(url, timeout=10).status_code == 401
    assert requests.delete(url, headers=ADMIN, timeout=10).status_code == 204
    assert requests.delete(url, headers=ADMIN, timeout=10).status_code == 404
    assert listing(stack)["total"] == 1
    cleared = requests.delete(f"{stack.web_url}/api/v1/feedback", headers=ADMIN, timeout=10)
    assert cleared.json() == {"deleted": 1} and listing(stack)["total"] == 0


@pytest.mark.slow
def test_corrections_outlive_their_jobs(stack, predicted, clean):
    job_id = predicted[2]["id"]
    assert feedback(stack, job_id, {"label": 2}).status_code == 201
    client = redis.Redis.from_url(stack.redis_url)
    assert client.ttl(keys.feedback(job_id)) == -1  # no expiry
    client.delete(keys.job(job_id))  # as if its record had expired
    assert requests.get(f"{stack.web_url}/api/v1/jobs/{job_id}", timeout=10).status_code == 404
    assert [c["job_id"] for c in listing(stack)["corrections"]] == [job_id]


@pytest.mark.slow
def test_bad_corrections_are_refused_and_nothing_is_stored(stack, predicted, mnist, clean):
    job_id = predicted[0]["id"]
    bad_bodies = [{"label": "3"}, {"label": 3.0}, {"label": True}, {"label": -1}, {"label": 10}, {"label": None},
                  {"label": 3, "extra": 1}, {}, [3], 3, "3"]  # fmt: skip
    for body in bad_bodies:
        answer = feedback(stack, job_id, body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]["code"] in ("invalid_feedback", "invalid_label")
    not_json = requests.post(f"{stack.web_url}/api/v1/jobs/{job_id}/feedback", data="label=3", timeout=10)
    assert not_json.status_code == 400

    assert feedback(stack, "0" * 32, {"label": 3}).status_code == 404
    assert feedback(stack, "not-a-job", {"label": 3}).status_code == 404

    # A prediction that read no digit (blank), a training job, and records left queued, failed
    # or cancelled, all written by the service's own code.
    (blank,) = submit(stack.web_url, [png_bytes(np.zeros((28, 28), np.uint8))])
    assert wait_for(stack.web_url, blank)["result"]["label"] is None
    training = requests.post(
        f"{stack.web_url}/api/v1/training-jobs", json={"arch": "logreg", "epochs": 1, "train_limit": 100},
        headers=ADMIN, timeout=10,
    ).json()["job_id"]  # fmt: skip
    records = rec.JobRecords(redis.Redis.from_url(stack.redis_url))
    queued, cancelled, failed = records.create("predict", count=3, images=[b"x", b"y", b"z"]).ids
    records.request_cancel(cancelled)
    records.finish([rec.Outcome(failed, rec.FAILED, error=rec.error("invalid_image", "not an image"))])
    expected = {failed: "job_not_succeeded", blank: "no_digit_read", training: "not_a_prediction",
                queued: "job_not_succeeded", cancelled: "job_not_succeeded"}  # fmt: skip
    for job, code in expected.items():
        answer = feedback(stack, job, {"label": 3})
        assert answer.status_code == 409, (code, answer.text)
        assert answer.json()["error"]["code"] == code
    assert listing(stack)["total"] == 0
    assert redis.Redis.from_url(stack.redis_url).get(keys.FEEDBACK_BYTES) is None
    wait_for(stack.web_url, training)


@pytest.mark.slow
def test_the_client_and_the_command_correct(stack, predicted, clean):
    client = DigitsClient(stack.web_url)
    kept = client.correct(predicted[4]["id"], 9)
    assert kept["label"] == 9 and kept["corrected"]
    with pytest.raises(RequestRefused) as refused:
        client.correct(predicted[4]["id"], 12)
    assert refused.value.status == 400
    assert client.feedback()["total"] == 1

    env = {"DIGITS_URL": stack.web_url, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([str(DIGITS), "correct", predicted[5]["id"], "5"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "confirmed" in done.stdout
    wrong = subprocess.run([str(DIGITS), "correct", "0" * 32, "5"], env=env, capture_output=True, text=True)
    assert wrong.returncode != 0 and "no job" in wrong.stderr
    assert client.feedback()["total"] == 2


@pytest.mark.slow
def test_metrics_count_corrections_and_the_share_corrected_per_version(stack, predicted, clean):
    feedback(stack, predicted[6]["id"], {"label": 0})
    text = requests.get(f"{stack.web_url}/metrics", timeout=10).text
    assert 'digits_feedback_total{model_version="1",verdict="corrected"}' in text
    share = next(line for line in text.splitlines() if line.startswith("digits_predictions_corrected_ratio"))
    assert 'model_version="1"' in share and 0 < float(share.split()[-1]) <= 1 / 10
