"""Long polls cost no thread: hundreds wait while the web answers everyone else, and waits beyond
the per-client bound are answered at once with the record as it stands."""

from __future__ import annotations

import socket
import time
from contextlib import ExitStack
from urllib.parse import urlsplit

import pytest
import requests

from stack.processes import PREDICT_QUEUES
from tests.conftest import OUTPUT, TOKEN, png_bytes
from tests.service.helpers import running_stack, wait_for, web_only

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def queued_training_job(base_url: str) -> str:
    """A job that stays queued (no worker here consumes the train queue): something to wait on."""
    response = requests.post(f"{base_url}/api/v1/training-jobs", json={"arch": "seed"}, headers=AUTH, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def open_long_polls(base_url: str, path: str, count: int, stack: ExitStack, source: str = "127.0.0.1") -> list:
    """``count`` connections from ``source``, each with a GET sent and its answer not yet read."""
    address = urlsplit(base_url)
    sockets = []
    for _ in range(count):
        sock = stack.enter_context(socket.create_connection((address.hostname, address.port), 10, (source, 0)))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sockets.append(sock)
    return sockets


def answered(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(64).startswith(b"HTTP/1.1 200")
    except TimeoutError:
        return False


@pytest.mark.slow
def test_two_hundred_long_polls_leave_health_and_predictions_answering(mnist):
    with running_stack(OUTPUT / "test_waiting", workers={"w1": {"queues": PREDICT_QUEUES, "pool": "solo"}}) as stack:
        job_id = queued_training_job(stack.web_url)
        with ExitStack() as held:
            polls = open_long_polls(stack.web_url, f"/api/v1/jobs/{job_id}?wait=30", 200, held, source="127.0.0.2")
            time.sleep(1)  # every poll is in and waiting
            health = requests.get(f"{stack.web_url}/healthz", timeout=5)
            accepted = requests.post(
                f"{stack.web_url}/api/v1/predictions", files={"image": png_bytes(mnist.x_test[0])}, timeout=5
            )
            job = wait_for(stack.web_url, accepted.json()["jobs"][0]["job_id"], timeout=10)
            still_waiting = sum(not answered(sock, 0.01) for sock in polls)
    assert health.status_code == 200
    assert job["status"] == "succeeded" and job["result"]["label"] == mnist.y_test[0]
    assert still_waiting == 200  # none was dropped or answered early: each holds a greenlet, not a thread


def test_a_wait_beyond_the_per_client_bound_is_answered_at_once_with_the_record():
    with web_only("test_waiting_bound", env={"MAX_WAITS_PER_CLIENT": "3"}, workers=1) as (stack, _):
        job_id = queued_training_job(stack.web_url)
        with ExitStack() as held:
            polls = open_long_polls(stack.web_url, f"/api/v1/jobs/{job_id}?wait=30", 3, held)
            time.sleep(0.5)
            started = time.monotonic()
            fourth = requests.get(f"{stack.web_url}/api/v1/jobs/{job_id}", params={"wait": 30}, timeout=10)
            seconds = time.monotonic() - started
            assert not any(answered(sock, 0.01) for sock in polls)  # the first three still wait
            other_client = open_long_polls(stack.web_url, f"/api/v1/jobs/{job_id}?wait=1", 1, held, "127.0.0.2")
            assert not answered(other_client[0], 0.5) and answered(other_client[0], 2)  # it may wait its second
    assert fourth.status_code == 200 and fourth.json()["status"] == "queued" and seconds < 5
