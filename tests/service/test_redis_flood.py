"""Redis memory cannot stop the service: a client floods a whole stack whose Redis has a small
maxmemory (noeviction) with /v2 requests of 256 digits; no answer is a 500, every job accepted
ends, and another client's image is answered within 5 s of the flood stopping.

Before: ended records counted against nothing and the finish script wrote before it freed, so the
same flood on a 48 MB Redis got 29 answers 500 in 40 s, and 5 s after it another client got a 500.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
import pytest
import redis
import requests

from jobs import keys
from stack.processes import PREDICT_QUEUES, Stack
from tests.conftest import OUTPUT, TOKEN, png_bytes
from tests.service.test_storage_limits import SourceAdapter

pytestmark = pytest.mark.slow
MiB = 1024 * 1024
# Caps that fit 85% of a 16 MB Redis (jobs/memory.py adds them up at start): 12.3 MiB.
MAXMEMORY, FINISHED = "16mb", 500
CAPS = {
    "MAX_QUEUED_BYTES": str(1 * MiB),
    "MAX_FINISHED_JOBS": str(FINISHED),
    "MAX_FINISHED_PER_CLIENT": str(FINISHED),
    "MAX_MODEL_VERSIONS": "1",
    "MAX_MODEL_BYTES": str(1 * MiB),
    "MAX_FEEDBACK_BYTES": str(MiB // 4),
}
FLOOD_S, THREADS, DIGITS = 30, 8, 256


def flood(base: str, pixels: np.ndarray, until: float, statuses: Counter, codes: Counter) -> None:
    body = {"inputs": [{"name": "pixels", "shape": list(pixels.shape), "datatype": "UINT8",
                        "data": pixels.ravel().tolist()}]}  # fmt: skip
    session = requests.Session()
    while time.monotonic() < until:
        try:
            answer = session.post(f"{base}/v2/models/digits/infer", json=body, timeout=60)
            statuses[answer.status_code] += 1
            if answer.status_code != 200:  # /v2 errors are {"error": "message (code)"}
                codes[answer.json()["error"].rpartition("(")[2].rstrip(")")] += 1
            if answer.status_code in (429, 503):
                time.sleep(min(float(answer.headers.get("Retry-After", "1")), 0.2))  # an impatient client
        except requests.RequestException as exc:
            statuses[type(exc).__name__] += 1


def test_a_flood_on_a_small_redis_gets_no_500_and_others_are_served_right_after(mnist, own_redis):
    server = own_redis(maxmemory=MAXMEMORY)
    client = redis.Redis.from_url(server.url)
    stack = Stack(server.url, OUTPUT / "test_redis_flood", env={"DIGITS_ADMIN_TOKEN": TOKEN, **CAPS})
    statuses: Counter = Counter()
    codes: Counter = Counter()
    try:
        stack.start_worker("predict1", queues=PREDICT_QUEUES, pool="solo")
        base = stack.start_web(workers=2)
        stack.wait_for_workers(1)
        pixels = mnist.x_test[:DIGITS]
        until = time.monotonic() + FLOOD_S
        threads = [threading.Thread(target=flood, args=(base, pixels, until, statuses, codes)) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stopped = time.monotonic()
        peak = client.info("memory")["used_memory_peak"]

        other = requests.Session()
        other.mount("http://", SourceAdapter("127.0.0.2"))
        polite: list[int] = []
        while time.monotonic() - stopped < 30:
            image = {"image": png_bytes(mnist.x_test[0])}
            answer = other.post(f"{base}/api/v1/predictions", params={"wait": 10}, files=image, timeout=30)
            polite.append(answer.status_code)
            if answer.status_code == 200:
                break
            time.sleep(0.2)
        served_after = time.monotonic() - stopped

        deadline = time.monotonic() + 60  # every job accepted ends: nothing stays queued or running
        while time.monotonic() < deadline and (client.zcard(keys.QUEUED_JOBS) or client.zcard(keys.RUNNING_JOBS)):
            time.sleep(0.5)
        left = client.zcard(keys.QUEUED_JOBS) + client.zcard(keys.RUNNING_JOBS)
        kept = client.zcard(keys.FINISHED_JOBS)
    finally:
        stack.stop_all()
    print(f"flood: {dict(statuses)} {dict(codes)}; Redis peak {peak / MiB:.1f} MiB of {MAXMEMORY}")
    print(f"the other client: {polite} within {served_after:.1f} s of the flood's end")
    assert statuses[200] > 0 and 500 not in statuses, statuses
    assert set(statuses) <= {200, 429, 503}, statuses
    assert polite[-1] == 200 and served_after < 5, (polite, served_after)
    assert left == 0
    assert kept <= FINISHED + THREADS * DIGITS  # forgotten as new ones end (at most a finish's worth over)
