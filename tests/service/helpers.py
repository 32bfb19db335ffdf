"""The ways the service tests start the service (running_stack, web_only) and the HTTP helpers they share."""

from __future__ import annotations

import base64
import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import redis
import requests

from bench.notices import FinishedNotices as FinishedNotices  # the service tests' too
from jobs.schemas import TERMINAL
from stack.processes import Stack
from tests.conftest import OUTPUT, TOKEN, private_redis


def submit(base_url: str, images: list[bytes], as_json: bool = False) -> list[str]:
    """POST images to /api/v1/predictions; return the job ids in order."""
    url = f"{base_url}/api/v1/predictions"
    if as_json:
        response = requests.post(url, json={"images": [base64.b64encode(i).decode() for i in images]}, timeout=30)
    else:
        files = [("image", (f"{n}.png", data, "image/png")) for n, data in enumerate(images)]
        response = requests.post(url, files=files, timeout=30)
    assert response.status_code == 202, response.text
    jobs = response.json()["jobs"]
    assert len(jobs) == len(images)
    return [job["job_id"] for job in jobs]


def wait_for(base_url: str, job_id: str, timeout: float = 120, admin: bool = False) -> dict:
    """Long-poll a job until it ends; fail the test if it does not within ``timeout``. With
    ``admin``, ask with the admin token (the record then names the worker that took it)."""
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {TOKEN}"} if admin else {}
    while time.monotonic() < deadline:
        response = requests.get(f"{base_url}/api/v1/jobs/{job_id}", params={"wait": 10}, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] in TERMINAL:
            return job
    raise AssertionError(f"job {job_id} did not end within {timeout} s: {job}")


def form_session(base_url: str) -> tuple[requests.Session, str]:
    """A browser-like session that has loaded the upload form: its cookie and the form's CSRF token."""
    session = requests.Session()
    page = session.get(f"{base_url}/", timeout=10)
    assert page.status_code == 200, page.text
    return session, re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


@contextlib.contextmanager
def running_stack(
    log_dir: Path, web_env: dict | None = None, env: dict | None = None, workers: dict[str, dict] | None = None
) -> Iterator[Stack]:
    """Own Redis, gunicorn (with ``web_env`` added) and ``workers`` (name -> Stack.start_worker
    options; default one worker on both queues), all with ``env`` added; stopped on exit."""
    workers = workers or {"w1": {"concurrency": 1}}
    with private_redis() as server:
        running = Stack(server.url, log_dir, env={"DIGITS_ADMIN_TOKEN": TOKEN, **(env or {})})
        try:
            for name, options in workers.items():
                running.start_worker(name, **options)
            running.start_web(env=web_env)
            running.wait_for_workers(len(workers))
            yield running
        finally:
            running.stop_all()


@contextlib.contextmanager
def web_only(name: str, env: dict | None = None, workers: int = 1) -> Iterator[tuple[Stack, redis.Redis]]:
    """gunicorn and a private Redis, no worker: whatever is enqueued stays visible in the queue.

    Logs land in test-output/<name>/.
    """
    for old in (OUTPUT / name).glob("*.log"):  # the logs of this run only
        old.unlink()
    with private_redis() as server:
        stack = Stack(server.url, OUTPUT / name, env={"DIGITS_ADMIN_TOKEN": TOKEN, **(env or {})})
        try:
            stack.start_web(workers=workers)
            yield stack, redis.Redis.from_url(server.url)
        finally:
            stack.stop_all()


def gunicorn_workers(stack: Stack) -> list[int]:
    """Process ids of the gunicorn worker processes (children of the master)."""
    master = stack.processes["web"].pid
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # the process ended meanwhile
                continue
            if int(fields[1]) == master:
                children.append(int(entry.name))
    return children


def resident_mb(pid: int) -> float:
    """A process's resident memory in MB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def assert_read_right(labels, probabilities, expected, misses: int = 2) -> None:
    """The protocol's two outputs for a batch of genuine MNIST digits: int64 labels that are the
    rows' argmax, float32 rows that sum to 1, and at most ``misses`` labels wrong."""
    import numpy as np

    assert labels.dtype == np.int64 and probabilities.dtype == np.float32
    assert probabilities.shape == (len(expected), 10)
    assert np.array_equal(labels, probabilities.argmax(axis=1))
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-3)
    assert (labels != expected).sum() <= misses


def draw(page, strokes: list[list[tuple[float, float]]], steps: int = 10) -> None:
    """Mouse strokes on the page's drawing pad; points are in the pad's own pixels (280 high, 280
    or 840 wide), whatever its size on screen."""
    pad = page.locator("#pad")
    box = pad.bounding_box()
    scale = box["width"] / pad.evaluate("canvas => canvas.width")
    for stroke in strokes:
        (x, y), rest = stroke[0], stroke[1:]
        page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
        page.mouse.down()
        for x, y in rest:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=steps)
        page.mouse.up()
