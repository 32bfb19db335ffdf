"""A worker that cannot work leaves, and something starts it again.

A predict worker whose lane-consumer thread dies stops saying it is ready and exits non-zero, so
its supervisor (docker-compose's restart policy, Kubernetes, or `make run`) starts it again; and
`make run` does restart a worker that dies. Real workers, a real Redis, the real launcher.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import redis
import requests

from jobs import keys, workers
from stack.processes import PREDICT_QUEUES, ROOT
from stack.redis_server import RedisServer, free_port
from tests.conftest import OUTPUT, png_bytes
from tests.service.helpers import running_stack, submit, wait_for

pytestmark = pytest.mark.slow


def test_a_predict_worker_whose_consumer_thread_dies_exits_non_zero(mnist):
    workers_wanted = {"p1": {"queues": PREDICT_QUEUES}}
    with running_stack(OUTPUT / "test_supervision_consumer", workers=workers_wanted) as stack:
        client = redis.Redis.from_url(stack.redis_url)
        process = stack.processes["p1"]
        (name,) = [w.name for w in workers.live(client) if w.ready]
        # Only this service writes the lanes; an entry that is not even text breaks the consumer's read.
        client.rpush(keys.lane(keys.PREDICT_QUEUE), b"\xff\xfe not a job id")
        process.wait(timeout=30)
        log = (OUTPUT / "test_supervision_consumer" / "p1.log").read_text()
        assert process.returncode != 0, log[-2000:]
        assert "lane consumer died" in log
        assert name not in [w.name for w in workers.live(client) if w.ready], "still said to be ready"

        # Started again, as a supervisor would, it serves.
        stack.start_worker("p1", queues=PREDICT_QUEUES)
        stack.wait_for_workers(1)
        (job_id,) = submit(stack.web_url, [png_bytes(mnist.x_test[0])])
        assert wait_for(stack.web_url, job_id, timeout=60)["result"]["label"] == 7


def test_make_run_restarts_a_worker_that_dies(tmp_path):
    server = RedisServer().start()
    port = free_port()
    env = {**os.environ, "REDIS_URL": server.url, "PYTHONUNBUFFERED": "1"}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "stack", "--port", str(port), "--logs", str(tmp_path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    client = redis.Redis.from_url(server.url)
    printed: list[str] = []
    threading.Thread(target=lambda: printed.extend(launcher.stdout), daemon=True).start()
    try:
        # Past start-up (where a worker that exits is a failure to start): supervising.
        _wait_until(lambda: any("Digits is running" in line for line in printed), launcher, timeout=240)
        (victim,) = _ready_predict_workers(client, launcher, set(), timeout=30)
        os.kill(victim.pid, signal.SIGKILL)
        (again,) = _ready_predict_workers(client, launcher, {victim.name}, timeout=180)
        assert again.pid != victim.pid
        assert requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
        assert launcher.poll() is None, "the launcher gave up"
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGINT)
        launcher.wait(timeout=60)
        server.close()
    output = "".join(printed)
    assert "predict1 exited" in output and "started again" in output, output


def _ready_predict_workers(client, launcher, not_named: set[str], timeout: float) -> list[workers.LiveWorker]:
    def ready() -> list[workers.LiveWorker]:
        return [w for w in workers.live(client) if w.predicts and w.ready and w.name not in not_named]

    _wait_until(ready, launcher, timeout)
    return ready()


def _wait_until(condition, launcher, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert launcher.poll() is None, "the launcher exited"
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"not so within {timeout} s")
