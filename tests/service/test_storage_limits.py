"""What unfinished work may hold in Redis is bounded, per client and in all, checked and written in
one step; beyond, 429 or 503 with Retry-After, and Redis's memory stays within its budget."""

from __future__ import annotations

import concurrent.futures
import io
import os
import time

import numpy as np
import redis
import requests
from PIL import Image

from jobs import keys
from stack.processes import Stack
from tests.conftest import OUTPUT, TOKEN

MiB = 1024 * 1024
# The other caps on what Redis keeps, small enough that every cap fits a small test Redis (the web
# adds them up against maxmemory at start: jobs/memory.py).
SMALL_CAPS = {"MAX_FINISHED_JOBS": "1000", "MAX_MODEL_VERSIONS": "1", "MAX_MODEL_BYTES": str(4 * MiB),
              "MAX_FEEDBACK_BYTES": str(MiB)}  # fmt: skip


def noise_png(seed: int, side: int = 600) -> bytes:
    """About a megabyte that does not compress: a valid image, under every per-image limit."""
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def flood(base_url: str, images: list[bytes], source: str = "127.0.0.1", parallel: int = 16) -> list[requests.Response]:
    """Post every image, ``parallel`` at a time, from ``source``."""

    def post(image: bytes) -> requests.Response:
        session = requests.Session()
        session.mount("http://", SourceAdapter(source))
        return session.post(f"{base_url}/api/v1/predictions", files={"image": image}, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(post, images))


class SourceAdapter(requests.adapters.HTTPAdapter):
    """Connections from a chosen loopback address: another client, as the web sees it."""

    def __init__(self, source: str):
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def test_a_flood_of_large_uploads_stops_at_the_byte_limits_and_redis_stays_in_budget(own_redis):
    images = [noise_png(seed) for seed in range(40)]
    size = len(images[0])
    per_client, total = 6 * MiB, 10 * MiB
    server = own_redis(maxmemory="64mb")
    client = redis.Redis.from_url(server.url)
    env = {"DIGITS_API_TOKEN": TOKEN, "MAX_PENDING_BYTES_PER_CLIENT": str(per_client),
           "MAX_QUEUED_BYTES": str(total), "RATE_LIMIT": "", **SMALL_CAPS}  # fmt: skip
    stack = Stack(server.url, OUTPUT / "test_storage_limits", env=env)
    try:
        stack.start_web(workers=2)
        baseline = client.info("memory")["used_memory"]
        first = flood(stack.web_url, images[:20])  # no worker: everything accepted stays pending
        second = flood(stack.web_url, images[20:], source="127.0.0.2")
        time.sleep(3)  # Redis frees the requests' buffers and the scripts' copies of their arguments
        memory = client.info("memory")
        held = client.get(keys.QUEUED_BYTES)
    finally:
        stack.stop_all()

    accepted_first = [r for r in first if r.status_code == 202]
    refused_first = [r for r in first if r.status_code != 202]
    assert len(accepted_first) == per_client // size  # exactly up to the limit, though 16 posted at once
    assert {r.status_code for r in refused_first} == {429}
    assert {r.json()["error"]["code"] for r in refused_first} == {"too_many_pending_bytes"}
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused_first)

    accepted_second = [r for r in second if r.status_code == 202]
    full = [r for r in second if r.status_code == 503]
    assert len(accepted_first) + len(accepted_second) == total // size  # then the queue as a whole is full
    assert full and {r.json()["error"]["code"] for r in full} == {"queue_full"}
    assert all(r.headers["Retry-After"] for r in full)
    assert int(held) <= total
    grown = memory["used_memory"] - baseline
    assert grown < total + 2 * MiB, f"Redis holds {grown / MiB:.1f} MiB more"
    assert memory["used_memory_peak"] < 64 * MiB  # the flood's moment of most never reached maxmemory


def test_when_redis_refuses_writes_for_memory_the_web_says_503(own_redis):
    """Redis filled by something else than the service (the caps keep the service's own share
    below the high-water mark, which is set at maxmemory itself here)."""
    server = own_redis(maxmemory="32mb")
    env = {"DIGITS_API_TOKEN": TOKEN, "MAX_QUEUED_BYTES": str(8 * MiB), "RATE_LIMIT": "", "REDIS_HIGH_WATER": "1",
           **SMALL_CAPS}  # fmt: skip
    stack = Stack(server.url, OUTPUT / "test_storage_limits_oom", env=env)
    try:
        stack.start_web(workers=1)
        client = redis.Redis.from_url(server.url)
        for i in range(80):  # up to about 2 MB under maxmemory: a few uploads fit, then Redis is full
            if client.info("memory")["used_memory"] > 30 * MiB:
                break
            client.set(f"someone-else:{i}", os.urandom(MiB // 2))
        answers = flood(stack.web_url, [noise_png(seed, side=300) for seed in range(40)], parallel=2)
    finally:
        stack.stop_all()
    statuses = [r.status_code for r in answers]
    assert 202 in statuses and 500 not in statuses
    refused = [r for r in answers if r.status_code == 503]
    # store_full from Redis's refusal; store_busy once the web's reading shows it over maxmemory
    assert refused and {r.json()["error"]["code"] for r in refused} <= {"store_full", "store_busy"}
    assert "store_full" in {r.json()["error"]["code"] for r in refused}
