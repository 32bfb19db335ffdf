"""GET /metrics: request counts summed over gunicorn's processes, and the cluster's job figures from Redis."""

from __future__ import annotations

import concurrent.futures
import math
import time

import pytest
import requests
from prometheus_client import multiprocess
from prometheus_client.parser import text_string_to_metric_families

from jobs import keys
from tests.conftest import png_bytes
from tests.service.helpers import gunicorn_workers, submit, wait_for, web_only

pytestmark = pytest.mark.slow


def scrape(base_url: str) -> dict[str, list]:
    """Metric families by name (parsed by prometheus_client's own parser: the format must be right)."""
    response = requests.get(f"{base_url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def value(families: dict, sample_name: str, **labels) -> float:
    family = sample_name.removesuffix("_total").removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
    matches = [
        s.value
        for s in families.get(family, [])
        if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return sum(matches)


def requests_to(families: dict, endpoint: str, status: str = "200") -> float:
    return value(families, "digits_http_requests_total", endpoint=endpoint, status=status)


def test_request_counts_are_summed_over_every_gunicorn_worker():
    endpoint = "/api/v1/models"

    def get(path: str) -> int:
        # A new connection each time, so both gunicorn processes take some.
        return requests.get(f"{stack.web_url}{path}", timeout=10, headers={"Connection": "close"}).status_code

    with web_only("test_metrics_requests", workers=2) as (stack, _):
        pids = gunicorn_workers(stack)
        assert len(pids) == 2
        deadline = time.monotonic() + 30
        while not all((stack.metrics_dir / f"counter_{pid}.db").exists() for pid in pids):  # both are up
            assert time.monotonic() < deadline, "a gunicorn worker never answered"
            get("/healthz")
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert set(pool.map(get, [endpoint] * 200)) == {200}
        families = scrape(stack.web_url)
        per_process = {pid: counted(stack.metrics_dir / f"counter_{pid}.db", endpoint) for pid in pids}

    # One scrape, answered by one process, sees the requests of both.
    assert requests_to(families, endpoint) == 200
    assert sum(per_process.values()) == 200 and all(per_process.values()), per_process
    assert value(families, "digits_http_request_duration_seconds_count", endpoint=endpoint) == 200


def counted(db_file, endpoint: str) -> float:
    """Requests to ``endpoint`` that one process recorded in its own metrics file."""
    families = multiprocess.MultiProcessCollector.merge([str(db_file)])
    return sum(
        s.value
        for family in families
        for s in family.samples
        if s.name == "digits_http_requests_total" and s.labels["endpoint"] == endpoint
    )


def test_endpoints_are_routes_not_raw_paths():
    with web_only("test_metrics_routes") as (stack, _):
        for job_id in ("a" * 32, "b" * 32, "not-a-job"):
            assert requests.get(f"{stack.web_url}/api/v1/jobs/{job_id}", timeout=10).status_code == 404
        requests.get(f"{stack.web_url}/no/such/page/1", timeout=10)
        requests.request("BREW", f"{stack.web_url}/healthz", timeout=10)
        families = scrape(stack.web_url)
    assert requests_to(families, "/api/v1/jobs/<job_id>", "404") == 3
    assert requests_to(families, "<unmatched>", "404") >= 1
    assert value(families, "digits_http_requests_total", method="other", status="405") == 1
    endpoints = {s.labels["endpoint"] for s in families["digits_http_requests"]}
    assert not any("aaaa" in endpoint or "no/such" in endpoint for endpoint in endpoints)


def test_without_redis_the_scrape_still_answers_and_says_so():
    with web_only("test_metrics_no_redis") as (stack, client):
        assert value(scrape(stack.web_url), "digits_redis_up") == 1
        client.shutdown(nosave=True)
        families = scrape(stack.web_url)
    assert value(families, "digits_redis_up") == 0
    assert "digits_queue_depth" not in families and "digits_http_requests" in families


def test_job_outcomes_latency_batches_queues_and_versions_cover_the_cluster(stack, mnist):
    before = scrape(stack.web_url)
    images = [png_bytes(x) for x in mnist.x_test[:12]]
    truncated = png_bytes(mnist.x_test[12])[:60]  # passes the web's header check, fails in the worker
    ids = submit(stack.web_url, images) + submit(stack.web_url, [truncated])
    outcomes = [wait_for(stack.web_url, job_id)["status"] for job_id in ids]
    assert outcomes == ["succeeded"] * 12 + ["failed"]
    after = scrape(stack.web_url)

    def grew(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("digits_jobs_total", type="predict", outcome="succeeded") == 12
    assert grew("digits_jobs_total", type="predict", outcome="failed") == 1
    assert grew("digits_job_latency_seconds_count") == 13
    assert 0 < grew("digits_job_latency_seconds_sum") < 13 * 60
    latency = [s for s in after["digits_job_latency_seconds"] if s.name.endswith("_bucket")]
    counts = [s.value for s in latency]
    assert counts == sorted(counts), "buckets must be cumulative"
    assert latency[-1].labels["le"] == "+Inf" and counts[-1] == value(after, "digits_job_latency_seconds_count")
    bounds = [float(s.labels["le"]) for s in latency]
    assert bounds == sorted(bounds) and math.isinf(bounds[-1])
    assert grew("digits_batch_size_count") >= 1  # at least one model call (12 images, perhaps split)
    assert grew("digits_batch_size_sum") == 12
    assert value(after, "digits_batch_size_bucket", le="+Inf") == value(after, "digits_batch_size_count")

    assert value(after, "digits_queue_depth", queue=keys.PREDICT_QUEUE) == 0
    assert value(after, "digits_queue_depth", queue=keys.TRAIN_QUEUE) == 0
    assert value(after, "digits_active_model_version") == 1
    assert value(after, "digits_workers_live") == 1
    (worker,) = after["digits_worker_model_version"]
    assert worker.value == 1 and worker.labels["worker"].startswith("w1@") and worker.labels["backend"]
    assert value(after, "digits_worker_resident_memory_bytes") > 50 * 2**20


def test_queue_wait_service_time_failures_and_redis_memory(stack, mnist):
    before = scrape(stack.web_url)
    images = [png_bytes(x) for x in mnist.x_test[20:30]]
    truncated = png_bytes(mnist.x_test[30])[:60]
    started = time.monotonic()
    ids = submit(stack.web_url, images) + submit(stack.web_url, [truncated])
    assert [wait_for(stack.web_url, job_id)["status"] for job_id in ids] == ["succeeded"] * 10 + ["failed"]
    elapsed = time.monotonic() - started
    after = scrape(stack.web_url)

    def grew(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    lane = keys.PREDICT_QUEUE  # a client with few jobs pending: the fast lane
    for histogram in ("digits_job_queue_wait_seconds", "digits_job_service_seconds"):
        assert grew(f"{histogram}_count", lane=lane) == 11, histogram
        assert 0 < grew(f"{histogram}_sum", lane=lane) < 11 * elapsed, histogram
        assert value(after, f"{histogram}_bucket", lane=lane, le="+Inf") == value(
            after, f"{histogram}_count", lane=lane
        )
        assert value(after, f"{histogram}_count", lane=keys.BULK_QUEUE) == value(
            before, f"{histogram}_count", lane=keys.BULK_QUEUE
        )
    assert grew("digits_job_failures_total", type="predict", reason="invalid_image") == 1
    assert value(after, "digits_jobs_expired_total", lane=lane) == 0  # the series exists before any expiry
    assert value(after, "digits_jobs_in_flight", lane=lane) == 0
    assert value(after, "digits_queue_oldest_age_seconds", lane=lane) == 0
    assert (
        value(after, "digits_lane_workers", lane=lane) == 1 == value(after, "digits_lane_workers", lane=keys.BULK_QUEUE)
    )
    assert value(after, "digits_redis_memory_used_bytes") > 2**20
