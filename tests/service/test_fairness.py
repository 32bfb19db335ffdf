"""One client cannot starve the others: hostile-but-valid images and bulk backlogs wait in their
own lane and in bounded batches, while a polite client's single images go ahead."""

from __future__ import annotations

import io
import threading
import time

import pytest
import requests
from PIL import Image

from jobs import keys
from model.rendering.digit import page
from stack.processes import PREDICT_QUEUES
from tests.conftest import OUTPUT, png_bytes
from tests.service.helpers import running_stack, wait_for
from tests.service.test_storage_limits import SourceAdapter

pytestmark = pytest.mark.slow
MiB = 1024 * 1024
WORKERS = {"p1": {"queues": PREDICT_QUEUES, "pool": "solo"}, "p2": {"queues": PREDICT_QUEUES, "pool": "solo"}}
ROOM = {"MAX_PENDING_BYTES_PER_CLIENT": str(512 * MiB), "MAX_QUEUED_BYTES": str(1024 * MiB)}


@pytest.fixture(scope="module")
def fleet():
    env = {**ROOM, "TF_INTRA_OP_THREADS": "1", "TF_INTER_OP_THREADS": "1"}
    with running_stack(OUTPUT / "test_fairness", env=env, workers=WORKERS) as stack:
        yield stack


def hostile_session() -> requests.Session:
    session = requests.Session()
    session.mount("http://", SourceAdapter("127.0.0.2"))  # another client, as the web sees it
    return session


def polite_latencies(base: str, image: bytes, count: int) -> tuple[list[float], list[str]]:
    """Seconds from submission to label for ``count`` single images, one after another, and their job ids."""
    seconds, job_ids = [], []
    for _ in range(count):
        started = time.monotonic()
        accepted = requests.post(f"{base}/api/v1/predictions", files={"image": image}, timeout=30)
        job_ids.append(accepted.json()["jobs"][0]["job_id"])
        assert wait_for(base, job_ids[-1], timeout=60)["status"] == "succeeded"
        seconds.append(time.monotonic() - started)
    return seconds, job_ids


def unfinished(stack, job_ids: list[str]) -> int:
    import redis

    from jobs.records import JobRecords

    return JobRecords(redis.Redis.from_url(stack.redis_url)).unfinished(job_ids)


# The largest transparent square a worker still reads: its working set (decoded pixels and the
# copies preprocessing makes, 21 bytes a pixel) just under MAX_DECODED_BYTES' 64 MiB.
HOSTILE_SIDE = 1750


def transparent_png(side: int) -> bytes:
    """Costly to read and under every limit: side x side pixels of nothing, a few hundred kB."""
    buffer = io.BytesIO()
    Image.new("RGBA", (side, side), (0, 0, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_hostile_but_valid_images_do_not_hold_a_polite_client_back(fleet, mnist):
    hostile = hostile_session().post(
        f"{fleet.web_url}/api/v1/predictions", files=[("image", transparent_png(HOSTILE_SIDE))] * 64, timeout=60
    )
    assert hostile.status_code == 202, hostile.text
    hostile_ids = [job["job_id"] for job in hostile.json()["jobs"]]
    time.sleep(0.5)  # both workers are into the hostile images
    seconds, _ = polite_latencies(fleet.web_url, png_bytes(mnist.x_test[0]), 5)
    still_hostile = unfinished(fleet, hostile_ids)
    assert still_hostile > 0, "the hostile images were done before the polite client started: nothing was shown"
    assert max(seconds) < 5, f"polite images took {seconds} s beside {len(hostile_ids)} hostile ones"
    jobs = [wait_for(fleet.web_url, job_id, timeout=120) for job_id in hostile_ids]
    assert {job["status"] for job in jobs} <= {"succeeded", "failed"}  # each ended, blank or too costly


def test_a_bulk_backlog_does_not_hold_a_polite_client_back(fleet, mnist):
    rendered = []
    for n, digit in enumerate(mnist.x_test[:50]):
        buffer = io.BytesIO()
        page(digit, 400, 300, seed=n).save(buffer, format="JPEG", quality=85)
        rendered.append(buffer.getvalue())
    bulk_ids: list[str] = []
    session = hostile_session()

    def keep_a_backlog() -> None:
        for _ in range(12):  # 3,000 photos of pages, 250 to a request (12 MB)
            files = [("image", rendered[i % 50]) for i in range(250)]
            answer = session.post(f"{fleet.web_url}/api/v1/predictions", files=files, timeout=60)
            assert answer.status_code == 202, answer.text
            bulk_ids.extend(job["job_id"] for job in answer.json()["jobs"])

    sender = threading.Thread(target=keep_a_backlog, daemon=True)
    sender.start()
    deadline = time.monotonic() + 60
    while len(bulk_ids) < 1000 and sender.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(bulk_ids) >= 1000, "the bulk client could not build its backlog"
    seconds, polite_ids = polite_latencies(fleet.web_url, png_bytes(mnist.x_test[1]), 10)
    sender.join()
    backlog = unfinished(fleet, bulk_ids)
    assert backlog > 0, "the backlog drained before the polite client was done: nothing was shown"
    assert max(seconds) < 3, f"polite images took {seconds} s beside a backlog ({backlog} still waiting)"
    import redis

    client = redis.Redis.from_url(fleet.redis_url)
    assert client.hget(keys.job(bulk_ids[-1]), "lane") == keys.BULK_QUEUE.encode()

    # A worker tops a batch up from the bulk lane, but recognises and records the fast lane's part
    # first: a polite image never waits for 255 bulk images of its own batch (each start is one
    # batch, stamped once by the worker that took it).
    def batch_of(job_id: str) -> tuple:
        return tuple(client.hmget(keys.job(job_id), "worker", "started_at"))

    polite_batches = {batch_of(job_id) for job_id in polite_ids}
    shared = polite_batches & {batch_of(job_id) for job_id in bulk_ids}
    assert not shared, f"{len(shared)} of {len(polite_ids)} polite images were recognised in a batch of bulk images"
