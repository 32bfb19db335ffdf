"""The Python client against a scripted server: retries and giving up (a real HTTP server on loopback,
in process). Against a real stack (chunking, order, per-image errors): tests/service/test_client_stack.py."""

from __future__ import annotations

import time

import pytest

from client import DigitsClient, ServiceUnavailable, ServiceUnreachable
from stack.redis_server import free_port
from tests.conftest import png_bytes
from tests.fast.scripted_server import Answer, ScriptedServer


def fake_job(job_id: str, label: int) -> dict:
    probabilities = [0.0] * 10
    probabilities[label] = 1.0
    result = {"label": label, "confidence": 1.0, "probabilities": probabilities, "model_version": 1}
    return {"id": job_id, "type": "predict", "status": "succeeded", "result": result, "error": None}


def unavailable(status: int, retry_after: str) -> Answer:
    return Answer(status, {"error": {"code": "unavailable", "message": "try later"}}, {"Retry-After": retry_after})


def test_503_and_429_are_retried_after_the_time_the_server_asks(mnist):
    job_id = "a" * 32
    routes = {
        ("POST", "/api/v1/predictions"): [
            unavailable(503, "1"),
            unavailable(503, "1"),
            Answer(202, {"jobs": [{"job_id": job_id, "status_url": f"/api/v1/jobs/{job_id}"}]}),
        ],
        ("GET", f"/api/v1/jobs/{job_id}"): [unavailable(429, "1"), Answer(200, fake_job(job_id, 3))],
    }
    with ScriptedServer(routes) as server:
        (prediction,) = DigitsClient(server.url, retry_for=10).predict([png_bytes(mnist.x_test[0])])
        posts = server.requests("POST", "/api/v1/predictions")
        polls = server.requests("GET", "/api/v1/jobs/")

    assert prediction.label == 3 and prediction.error is None and prediction.job_id == job_id
    assert [status for _, status in posts] == [503, 503, 202]
    assert [status for _, status in polls] == [429, 200]
    pauses = [later - earlier for (earlier, _), (later, _) in zip(posts, posts[1:], strict=False)]
    pauses.append(polls[1][0] - polls[0][0])
    assert all(pause >= 0.95 for pause in pauses), pauses  # Retry-After: 1 was honoured every time


def test_retrying_stops_when_the_service_stays_unavailable(mnist):
    routes = {("POST", "/api/v1/predictions"): [unavailable(503, "1")]}
    with ScriptedServer(routes) as server:
        client = DigitsClient(server.url, retry_for=2.5)
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable) as raised:
            client.predict([png_bytes(mnist.x_test[0])])
        elapsed = time.monotonic() - started
        attempts = len(server.requests("POST", "/api/v1/predictions"))

    assert raised.value.status == 503 and "try later" in str(raised.value)
    assert attempts == 3 and 1.9 < elapsed < 4, (attempts, elapsed)


def test_a_retry_after_beyond_the_budget_gives_up_at_once(mnist):
    routes = {("POST", "/api/v1/predictions"): [unavailable(429, "120")]}
    with ScriptedServer(routes) as server:
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable):
            DigitsClient(server.url, retry_for=10).predict([png_bytes(mnist.x_test[0])])
        assert time.monotonic() - started < 2
        assert len(server.requests("POST", "/api/v1/predictions")) == 1


def test_no_service_is_reported_at_once(mnist):
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ServiceUnreachable) as raised:
        DigitsClient(url).predict([png_bytes(mnist.x_test[0])])
    assert raised.value.url == url and time.monotonic() - started < 3
