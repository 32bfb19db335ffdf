"""A flood of large and malformed requests: every one answered below 500, and the web's memory stays bounded."""

from __future__ import annotations

import base64
import concurrent.futures
import os
import threading
import time

import pytest
import requests

from tests.fast.test_api_validation import BOMB_PNG, HUGE_PNG, image_bytes
from tests.service.helpers import gunicorn_workers, resident_mb, web_only

pytestmark = pytest.mark.slow

RSS_LIMIT_MB = 300  # per gunicorn worker process, after the flood and at its peak
MB = 1024 * 1024


def flood_requests() -> list[tuple[str, dict, set[int]]]:
    """(path, requests keyword arguments, the statuses allowed) for each request of the flood."""
    junk = os.urandom(15 * MB)
    tiny = [("image", (f"{i}.png", b"not an image", "image/png")) for i in range(1000)]
    valid = [("image", (f"{i}.png", image_bytes(), "image/png")) for i in range(200)]
    kinds = [
        # A 15 MB file: read, then refused as over MAX_IMAGE_BYTES.
        ("/api/v1/predictions", {"files": [("image", ("big.png", junk, "image/png"))]}, {413}),
        # 25 MB announced: refused from the Content-Length, unread.
        (
            "/api/v1/predictions",
            {"data": junk + junk[: 10 * MB], "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
            {413},
        ),
        # 14 MB of base64 in JSON: parsed, decoded, refused.
        ("/api/v1/predictions", {"json": {"images": [base64.b64encode(junk[: 10 * MB + 1]).decode()]}}, {413}),
        ("/api/v1/predictions", {"files": tiny}, {415}),
        ("/api/v1/predictions", {"files": [("image", ("b.png", BOMB_PNG, "image/png"))] * 5}, {413}),
        ("/api/v1/predictions", {"files": [("image", ("h.png", HUGE_PNG, "image/png"))] * 20}, {413}),
        # The form: without a CSRF token it is refused before any image is looked at.
        ("/predict", {"files": [("image", ("big.png", junk, "image/png"))]}, {400, 413}),
        # Accepted work too, until the pending-jobs limit says no.
        ("/api/v1/predictions", {"files": valid}, {202, 429}),
    ]
    return kinds * 12


def test_the_web_survives_a_flood_of_large_and_malformed_requests_in_bounded_memory():
    with web_only("test_flood", env={"RATE_LIMIT": "", "MAX_PENDING_PER_CLIENT": "2000"}, workers=2) as (stack, _):
        pids = gunicorn_workers(stack)
        assert len(pids) == 2
        peak = dict.fromkeys(pids, 0.0)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                for pid in pids:
                    peak[pid] = max(peak[pid], resident_mb(pid))
                time.sleep(0.05)

        def send(item: tuple[str, dict, set[int]]) -> tuple[int, set[int], str]:
            path, kwargs, allowed = item
            try:
                response = requests.post(stack.web_url + path, timeout=120, **kwargs)
            except requests.ConnectionError as exc:  # refused before the body was all sent: fine, not a 5xx
                return 413, allowed | {413}, str(exc)
            return response.status_code, allowed, response.text[:200]

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(send, flood_requests()))
        seconds = time.monotonic() - started
        done.set()
        sampler.join()
        after = {pid: resident_mb(pid) for pid in pids}
        assert requests.get(f"{stack.web_url}/healthz", timeout=10).ok
        assert gunicorn_workers(stack) == pids, "a gunicorn worker died or was replaced"

    unexpected = [(status, text) for status, allowed, text in answers if status not in allowed]
    assert not unexpected, unexpected[:5]
    print(f"flood of {len(answers)} requests in {seconds:.1f} s; RSS MB peak {peak}, after {after}")
    assert max(after.values()) < RSS_LIMIT_MB, after
    assert max(peak.values()) < RSS_LIMIT_MB * 2, peak
