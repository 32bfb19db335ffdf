"""Faults with real processes, each against a Redis server the test starts itself.

The promise under test: every accepted job ends succeeded or failed with a reason, exactly once.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import signal
import threading
import time
from collections import Counter

import pytest
import redis
import requests
from PIL import Image

from jobs import keys
from stack.processes import PREDICT_QUEUES, Stack
from tests.conftest import OUTPUT, TOKEN, png_bytes
from tests.service.helpers import FinishedNotices, submit, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def service(request, own_redis):
    """A private Redis (append-only, as in production) and a Stack to start processes on."""
    server = own_redis(appendonly=True)
    stack = Stack(
        server.url,
        OUTPUT / f"test_faults-{request.node.name}",
        env={"DIGITS_API_TOKEN": TOKEN, "BROKER_VISIBILITY_TIMEOUT": "5", "TRAINING_STALE_SECONDS": "6"},
    )
    yield server, stack
    stack.stop_all()


def states(client: redis.Redis, job_ids: list[str]) -> list[tuple[bytes, bytes]]:
    """(status, worker) of each job, in one round trip."""
    with client.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(keys.job(job_id), "status", "worker")
        return [(status or b"", worker or b"") for status, worker in pipe.execute()]


def wait_all(stack: Stack, job_ids: list[str], timeout: float = 180) -> list[dict]:
    deadline = time.monotonic() + timeout
    return [wait_for(stack.web_url, job_id, timeout=max(1.0, deadline - time.monotonic())) for job_id in job_ids]


def test_a_worker_killed_mid_batch_loses_nothing_and_answers_nothing_twice(service, mnist):
    server, stack = service
    stack.start_worker("w1", queues=PREDICT_QUEUES)
    stack.start_worker("w2", queues=PREDICT_QUEUES)
    stack.start_web()
    stack.wait_for_workers(2)
    notices = FinishedNotices(server.url)
    images = [png_bytes(x) for x in mnist.x_test[:100]]
    ids = [job_id for _ in range(15) for job_id in submit(stack.web_url, images)]

    client = redis.Redis.from_url(server.url)
    deadline = time.monotonic() + 60
    # Kill w1 while it holds a batch it has not recorded; if it ended its share before it was
    # seen doing so, give the workers more.
    while not any(status == b"running" and worker.startswith(b"w1@") for status, worker in states(client, ids)):
        assert time.monotonic() < deadline, "w1 was never seen holding a batch"
        if all(status != b"queued" for status, _ in states(client, ids)):
            ids += submit(stack.web_url, images)
        time.sleep(0.01)
    stack.stop("w1", signal.SIGKILL)
    killed_at = time.time()

    jobs = wait_all(stack, ids)
    notices.close()
    assert Counter(job["status"] for job in jobs) == {"succeeded": len(ids)}
    assert set(notices.counts) == set(ids)
    assert max(notices.counts.values()) == 1, "a job was answered twice"
    last = max(dt.datetime.fromisoformat(job["finished_at"]).timestamp() for job in jobs)
    print(f"the last job ended {last - killed_at:.1f} s after the kill")
    # Its taken jobs come back when its heartbeat stops (6 s), not after the visibility timeout.
    assert last - killed_at < 15, f"the last job ended {last - killed_at:.1f} s after the kill"


def test_redis_restart_keeps_accepted_jobs_and_the_web_answers_503_meanwhile(service, mnist):
    server, stack = service
    stack.start_worker("w1", queues=PREDICT_QUEUES)
    stack.start_web()
    stack.wait_for_workers(1)
    ids = [job_id for _ in range(3) for job_id in submit(stack.web_url, [png_bytes(x) for x in mnist.x_test[:100]])]
    server.stop()

    started = time.monotonic()
    down = requests.get(f"{stack.web_url}/api/v1/jobs/{ids[0]}", timeout=10)
    assert down.status_code == 503 and down.json()["error"]["code"] == "unavailable"
    assert int(down.headers["Retry-After"]) > 0
    refused = requests.post(
        f"{stack.web_url}/api/v1/predictions", files={"image": ("a.png", png_bytes(mnist.x_test[0]))}, timeout=10
    )
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "unavailable"
    assert requests.get(f"{stack.web_url}/readyz", timeout=10).status_code == 503
    assert requests.get(f"{stack.web_url}/healthz", timeout=10).status_code == 200
    assert time.monotonic() - started < 10, "the web hung while Redis was down"

    time.sleep(2)
    server.start()  # same port, same append-only file
    jobs = wait_all(stack, ids)
    assert Counter(job["status"] for job in jobs) == {"succeeded": len(ids)}
    assert stack.processes["w1"].poll() is None, "the worker did not survive the outage"
    (late,) = submit(stack.web_url, [png_bytes(mnist.x_test[1])])
    assert wait_for(stack.web_url, late)["result"]["label"] == 2


def test_polling_resumes_with_the_same_ids_after_a_web_restart(service, mnist):
    server, stack = service
    stack.start_worker("w1", queues=PREDICT_QUEUES)
    port = int(stack.start_web().rsplit(":", 1)[1])
    stack.wait_for_workers(1)
    ids = submit(stack.web_url, [png_bytes(x) for x in mnist.x_test[:200]])
    stack.stop("web")
    stack.start_web(port=port)
    jobs = wait_all(stack, ids)
    assert Counter(job["status"] for job in jobs) == {"succeeded": 200}


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _corrupt_png(pixels) -> bytes:
    data = bytearray(png_bytes(pixels))
    idat = data.index(b"IDAT")
    data[idat + 8 : idat + 40] = b"\x00" * 32  # garbage inside the compressed stream
    return bytes(data)


def test_poison_images_fail_alone_and_the_worker_goes_on(service, mnist):
    server, stack = service
    stack.start_worker("w1", queues=PREDICT_QUEUES)
    stack.start_web()
    stack.wait_for_workers(1)
    jpeg = io.BytesIO()
    Image.fromarray(255 - mnist.x_test[3]).resize((300, 300)).save(jpeg, format="JPEG")
    good = [png_bytes(x) for x in mnist.x_test[:3]]
    poison = [_truncated(jpeg.getvalue()), _corrupt_png(mnist.x_test[4]), _truncated(png_bytes(mnist.x_test[5]))]
    ids = submit(stack.web_url, [good[0], poison[0], good[1], poison[1], poison[2], good[2]])
    jobs = wait_all(stack, ids)

    assert [job["status"] for job in jobs] == ["succeeded", "failed", "succeeded", "failed", "failed", "succeeded"]
    assert [jobs[i]["result"]["label"] for i in (0, 2, 5)] == [7, 2, 1]
    for job in (jobs[1], jobs[3], jobs[4]):
        assert job["error"]["code"] == "invalid_image" and job["error"]["message"]
    assert stack.processes["w1"].poll() is None
    (after,) = submit(stack.web_url, [good[0]])
    assert wait_for(stack.web_url, after)["status"] == "succeeded"
    # The worker's log says which job failed, in a line a machine can read.
    lines = [json.loads(line) for line in (stack.log_dir / "w1.log").read_text().splitlines() if line.startswith("{")]
    assert {ids[1], ids[3], ids[4]} <= {line.get("job_id") for line in lines if line["level"] != "ERROR"}


def noise_png(side: int) -> bytes:
    """A valid image that takes a while to read (a few hundred ms): time to catch a worker in it."""
    import numpy as np

    pixels = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class WorkerKiller:
    """Kills whichever worker reads ``job_id`` (as an image that crashes its worker would: in a
    batch, or alone), and starts it again; counts its kills."""

    def __init__(self, stack: Stack, client: redis.Redis, job_id: str):
        self.stack, self.client, self.job_id = stack, client, job_id
        self.kills = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seen = None
        while not self._stop.is_set():
            fields = self.client.hmget(keys.job(self.job_id), "status", "worker", "deliveries", "alone")
            status, worker, deliveries, alone = fields
            being_read = deliveries == b"1" or alone == b"1"  # the first time in a batch, or read alone
            if status == b"running" and being_read and (worker, deliveries) != seen:
                seen = (worker, deliveries)
                name = worker.decode().split("@")[0]
                self.stack.stop(name, signal.SIGKILL)
                self.kills += 1
                self.stack.start_worker(name, queues=PREDICT_QUEUES, pool="solo")
            time.sleep(0.005)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def test_an_image_that_kills_its_worker_ends_poison_and_its_batch_mates_succeed(service, mnist):
    server, stack = service
    for name in ("w1", "w2"):
        stack.start_worker(name, queues=PREDICT_QUEUES, pool="solo")
    stack.start_web()
    stack.wait_for_workers(2)
    client = redis.Redis.from_url(server.url)
    innocents = [png_bytes(x) for x in mnist.x_test[:4]]
    files = [("image", image) for image in innocents[:2] + [noise_png(1600)] + innocents[2:]]
    accepted = requests.post(f"{stack.web_url}/api/v1/predictions", files=files, timeout=30)
    ids = [job["job_id"] for job in accepted.json()["jobs"]]  # one message, one batch
    killer = WorkerKiller(stack, client, ids[2])
    try:
        jobs = wait_all(stack, ids, timeout=240)
    finally:
        killer.close()

    poison = jobs.pop(2)
    assert poison["status"] == "failed" and poison["error"]["code"] == "poison", poison
    assert int(client.hget(keys.job(ids[2]), "deliveries")) == 3 and killer.kills == 2
    assert [job["status"] for job in jobs] == ["succeeded"] * 4
    assert [job["result"]["label"] for job in jobs] == [int(y) for y in mnist.y_test[:4]]


def test_malformed_lane_entries_are_dropped_and_the_worker_goes_on(service, mnist):
    server, stack = service
    stack.start_worker("w1", queues=PREDICT_QUEUES, pool="solo")
    stack.start_web()
    stack.wait_for_workers(1)
    client = redis.Redis.from_url(server.url)
    junk = ["123", "../../etc/passwd", "", '{"not": "ids"}', "0" * 33]
    client.rpush(keys.lane(keys.PREDICT_QUEUE), *junk)
    client.rpush(keys.lane(keys.BULK_QUEUE), "not a job id")
    (job_id,) = submit(stack.web_url, [png_bytes(mnist.x_test[0])])
    assert wait_for(stack.web_url, job_id)["status"] == "succeeded"
    assert client.llen(keys.lane(keys.PREDICT_QUEUE)) == 0 and client.llen(keys.lane(keys.BULK_QUEUE)) == 0
    log = (stack.log_dir / "w1.log").read_text()
    dropped = [int(n) for n in re.findall(r"dropped (\d+) lane entries that are not job ids", log)]
    assert sum(dropped) == len(junk) + 1  # each logged, none read or put back
    assert stack.processes["w1"].poll() is None


def test_a_killed_training_worker_fails_its_job_and_leaves_the_active_model(service):
    server, stack = service
    stack.start_worker("p1", queues=PREDICT_QUEUES)  # the survivor that notices the silence
    stack.start_worker("t1", queues="train")
    stack.start_web()
    stack.wait_for_workers(2)
    response = requests.post(
        f"{stack.web_url}/api/v1/training-jobs",
        json={"arch": "default", "epochs": 50, "activate": "always"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    job_id = response.json()["job_id"]
    deadline = time.monotonic() + 120
    while not requests.get(f"{stack.web_url}/api/v1/jobs/{job_id}", timeout=10).json().get("progress"):
        assert time.monotonic() < deadline, "the training job never reported progress"
        time.sleep(0.2)
    stack.stop("t1", signal.SIGKILL)

    job = wait_for(stack.web_url, job_id, timeout=60)
    assert job["status"] == "failed" and job["error"]["code"] == "worker_lost", job
    models = requests.get(f"{stack.web_url}/api/v1/models", timeout=10).json()
    assert models["active_version"] == 1 and len(models["models"]) == 1


def test_a_training_job_that_crashes_ends_failed_with_its_reason(service):
    server, stack = service
    stack.start_worker("t1", queues="train", env={"MNIST_DIR": "/nonexistent/mnist"})
    stack.start_web()
    stack.wait_for_workers(1)
    response = requests.post(
        f"{stack.web_url}/api/v1/training-jobs",
        json={"arch": "seed", "epochs": 1},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    job = wait_for(stack.web_url, response.json()["job_id"], timeout=60)
    assert job["status"] == "failed" and "/nonexistent/mnist" in job["error"]["message"]
    assert stack.processes["t1"].poll() is None
