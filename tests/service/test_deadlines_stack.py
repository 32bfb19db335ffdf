"""Deadlines through the whole service: with its only worker stopped (SIGSTOP), jobs whose deadline
passes meanwhile are never read once it runs again, through the job API, tritonclient's
``infer(timeout=)`` over HTTP and gRPC, the Python client and the ``digits`` command. The rule
and the scripts: tests/fast/test_deadlines.py.
"""

from __future__ import annotations

import base64
import os
import signal
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests

from jobs import keys
from jobs import records as rec
from tests.conftest import png_bytes

DEADLINE_MS = 300


@contextmanager
def stopped(stack, name: str = "w1"):
    """The worker ``name`` stopped (SIGSTOP) inside, continued (SIGCONT) on the way out."""
    group = stack.processes[name].pid
    os.killpg(group, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(group, signal.SIGCONT)


def counted(stack) -> tuple[int, float]:
    """(predictions ended expired, images through the model) so far, from the cluster's metrics."""
    import redis

    client = redis.Redis.from_url(stack.redis_url)
    expired = int(client.hget(keys.METRICS_OUTCOMES, "predict:expired") or 0)
    return expired, float(client.hget(keys.METRICS_BATCH_SIZE, "sum") or 0)


def tensor_jobs(stack) -> dict[str, dict]:
    """Every /v2 request's one job (jobs/tensors.py) by id, read from the store: they are not among
    the jobs listed."""
    import redis

    client = redis.Redis.from_url(stack.redis_url)
    found = [key for key in client.scan_iter(keys.job("*")) if not key.endswith(b":image")]
    ids = [key.decode().rsplit(":", 1)[1] for key in found if client.hexists(key, "tensor")]
    return {job_id: dict(job) for job_id, job in zip(ids, rec.JobRecords(client).get_many(ids), strict=True) if job}


def tensor_jobs_since(stack, before: dict[str, dict]) -> list[dict]:
    return [job for job_id, job in tensor_jobs(stack).items() if job_id not in before]


def assert_expired_unread(jobs: list[dict]) -> None:
    for job in jobs:
        assert job["status"] == "expired", job
        assert job["error"]["code"] == "deadline_exceeded"
        assert job.get("started_at") is None and "worker" not in job  # no worker started it: its image was never read


@pytest.mark.slow
def test_jobs_whose_deadline_passed_while_the_worker_was_stopped_end_expired_unread(stack, mnist):
    base = f"{stack.web_url}/api/v1/predictions"
    digit = png_bytes(mnist.x_test[0])
    expired_before, read_before = counted(stack)
    deadline_ids = []
    with stopped(stack):
        # 50 jobs with a 300 ms deadline, in 10 requests of 5, the deadline given each way the API takes it
        for i in range(10):
            if i % 3 == 0:
                answer = requests.post(base, params={"timeout_ms": DEADLINE_MS}, files=[("image", digit)] * 5)
            elif i % 3 == 1:
                images = [base64.b64encode(digit).decode()] * 5
                answer = requests.post(base, json={"images": images, "timeout_ms": DEADLINE_MS})
            else:
                answer = requests.post(base, data={"timeout_ms": str(DEADLINE_MS)}, files=[("image", digit)] * 5)
            assert answer.status_code == 202, answer.text
            deadline_ids += [job["job_id"] for job in answer.json()["jobs"]]
        patient = requests.post(base, files={"image": digit}).json()["jobs"][0]["job_id"]
        time.sleep(DEADLINE_MS / 1000 + 0.3)
    done = requests.get(f"{stack.web_url}/api/v1/jobs/{patient}", params={"wait": 30}, timeout=40).json()
    assert done["status"] == "succeeded" and done["result"]["label"] == mnist.y_test[0]
    assert "deadline" not in done
    jobs = [
        requests.get(f"{stack.web_url}/api/v1/jobs/{job_id}", params={"wait": 10}).json() for job_id in deadline_ids
    ]
    assert len(jobs) == 50
    assert_expired_unread(jobs)
    assert all(job["deadline"] for job in jobs)
    expired_after, read_after = counted(stack)
    assert (expired_after - expired_before, read_after - read_before) == (50, 1)
    metrics = requests.get(f"{stack.web_url}/metrics", timeout=10).text
    assert f'digits_jobs_total{{outcome="expired",type="predict"}} {float(expired_after)}' in metrics


def one_digit_input(triton, mnist):
    """For tritonclient's http or grpc module: the inputs of a request for MNIST test digit ``i``."""

    def pixels(index: int):
        tensor = triton.InferInput("pixels", [1, 28, 28], "UINT8")
        tensor.set_data_from_numpy(mnist.x_test[index : index + 1].astype(np.uint8))
        return [tensor]

    return pixels


@pytest.mark.slow
def test_tritonclient_timeout_expires_the_jobs_it_gave_up_on(stack, mnist):
    triton = pytest.importorskip("tritonclient.http")
    client = triton.InferenceServerClient(urlsplit(stack.web_url).netloc, concurrency=64, network_timeout=60)
    pixels = one_digit_input(triton, mnist)
    expired_before, read_before = counted(stack)
    before = tensor_jobs(stack)
    with stopped(stack):
        started = time.monotonic()
        hurried = [client.async_infer("digits", pixels(i), timeout=DEADLINE_MS * 1000) for i in range(50)]
        patient = client.async_infer("digits", pixels(50))
        for request in hurried:
            with pytest.raises(triton.InferenceServerException) as refused:
                request.get_result()
            assert "deadline" in str(refused.value)
        answered_in = time.monotonic() - started
    result = patient.get_result()
    assert result.as_numpy("label")[0] == mnist.y_test[50]
    assert answered_in < 5, f"the 50 with a 300 ms timeout were answered only after {answered_in:.1f} s"
    jobs = tensor_jobs_since(stack, before)
    assert len(jobs) == 51  # one job a request
    assert sum(job["status"] == "succeeded" for job in jobs) == 1
    assert_expired_unread([job for job in jobs if job["status"] != "succeeded"])
    expired_after, read_after = counted(stack)
    assert (expired_after - expired_before, read_after - read_before) == (50, 1)


@pytest.mark.parametrize(
    ("how", "value", "code"),
    [
        ("query", "soon", "invalid_timeout"),
        ("query", "-5", "invalid_timeout"),
        ("query", "9" * 40, "invalid_timeout"),
        ("json", "300", "invalid_timeout"),  # JSON numbers are numbers
        ("json", 86_400_001, "invalid_timeout"),
        ("form", "1.5", "invalid_timeout"),
    ],
)
def test_a_bad_timeout_is_refused_saying_so(stack, how, value, code):
    base = f"{stack.web_url}/api/v1/predictions"
    image = png_bytes(np.zeros((28, 28), np.uint8))
    if how == "query":
        answer = requests.post(base, params={"timeout_ms": value}, files={"image": image})
    elif how == "json":
        answer = requests.post(base, json={"images": [base64.b64encode(image).decode()], "timeout_ms": value})
    else:
        answer = requests.post(base, data={"timeout_ms": value}, files={"image": image})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == code, answer.text


def test_a_timeout_given_twice_must_agree(stack):
    image = png_bytes(np.zeros((28, 28), np.uint8))
    answer = requests.post(
        f"{stack.web_url}/api/v1/predictions",
        params={"timeout_ms": 100},
        data={"timeout_ms": "200"},
        files={"image": image},
    )
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_timeout"
    same = requests.post(
        f"{stack.web_url}/api/v1/predictions?wait=10",
        params={"timeout_ms": 9000},
        data={"timeout_ms": "9000"},
        files={"image": image},
    )
    assert same.status_code in (200, 202), same.text


@pytest.mark.parametrize("timeout", ["300", -1, 1.5, 86_400_000_001])
def test_a_bad_v2_timeout_is_refused(stack, timeout):
    body = {
        "inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 28, 28], "data": [0] * 784}],
        "parameters": {"timeout": timeout},
    }
    answer = requests.post(f"{stack.web_url}/v2/models/digits/infer", json=body, timeout=30)
    assert answer.status_code == 400 and "timeout" in answer.json()["error"], answer.text


def test_the_python_client_sends_a_deadline(stack, mnist):
    from client import DigitsClient

    (prediction,) = DigitsClient(stack.web_url).predict([png_bytes(mnist.x_test[1])], deadline_ms=60_000)
    assert prediction.label == mnist.y_test[1]
    assert prediction.record["deadline"].endswith("Z")


def test_the_digits_command_sends_a_deadline(stack, mnist, tmp_path):
    import json

    from tests.service.test_cli import digits, save_pngs

    (path,) = save_pngs(tmp_path, mnist, [2])
    run = digits("predict", "--deadline-ms", "60000", "--json", str(path), server=stack.web_url)
    assert run.returncode == 0, run.stderr
    record = json.loads(run.stdout)
    assert record["result"]["label"] == mnist.y_test[2] and record["deadline"].endswith("Z")


@pytest.mark.slow
def test_a_grpc_calls_deadline_expires_its_jobs(stack, mnist):
    grpc_triton = pytest.importorskip("tritonclient.grpc")
    address = stack.start_grpc()
    pixels = one_digit_input(grpc_triton, mnist)
    expired_before, read_before = counted(stack)
    before = tensor_jobs(stack)
    with grpc_triton.InferenceServerClient(url=address) as client:
        with stopped(stack):
            for i in range(5):  # the call's own deadline
                with pytest.raises(grpc_triton.InferenceServerException):
                    client.infer("digits", pixels(i), client_timeout=DEADLINE_MS / 1000)
            for i in range(5):  # Triton's timeout parameter, in microseconds
                with pytest.raises(grpc_triton.InferenceServerException, match="deadline"):
                    client.infer("digits", pixels(i), timeout=DEADLINE_MS * 1000, priority=1)
            time.sleep(DEADLINE_MS / 1000)
        result = client.infer("digits", pixels(20), client_timeout=60)
    assert result.as_numpy("label")[0] == mnist.y_test[20]
    jobs = tensor_jobs_since(stack, before)
    assert len(jobs) == 11  # one job a request
    assert sum(job["status"] == "succeeded" for job in jobs) == 1
    assert_expired_unread([job for job in jobs if job["status"] != "succeeded"])
    assert counted(stack) == (expired_before + 10, read_before + 1)
