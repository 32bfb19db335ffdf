"""Triton's own load tool, perf_analyzer, drives the service unchanged, over HTTP and gRPC: it
reads the model's metadata and configuration, then sends genuine MNIST digits, as pixels and as
PNG files, and every image it sent is read."""

from __future__ import annotations

import os

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.perf_analyzer import Unavailable, image_data, install, pixels_data, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def perf_analyzer():
    try:
        return install()
    except Unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}: .ci/run installs what it needs")
        pytest.skip(str(exc))


def predictions_ended(stack) -> dict[str, float]:
    """Prediction jobs ended so far, by outcome, as the service's metrics count them."""
    text = requests.get(f"{stack.web_url}/metrics", timeout=10).text
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "digits_jobs_total" and sample.labels.get("type") == "predict"
    }


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize(
    ("name", "data", "per_request"),
    [("pixels", lambda digits: pixels_data(digits, 16), 16), ("image", lambda digits: image_data(digits[:64]), 1)],
)
def test_perf_analyzer_measures_the_service_and_every_image_is_read(
    stack, perf_analyzer, mnist, name, data, per_request, protocol
):
    program, env = perf_analyzer
    address = stack.web_url.split("//", 1)[1] if protocol == "http" else stack.grpc_address or stack.start_grpc()
    before = predictions_ended(stack)

    # What is tested is that it measures and every image is read, not how steady a shared machine is.
    images = data(mnist.x_test[:256])
    measured = run(program, env, address, images, 2, window_ms=1000, protocol=protocol, stable_percent=60)

    assert measured["returncode"] == 0, measured["output"]
    assert measured["requests"] and measured["requests_per_s"] > 0, measured["output"]
    after = predictions_ended(stack)
    assert after.get("succeeded", 0) - before.get("succeeded", 0) >= measured["requests"] * per_request
    assert after.get("failed", 0) == before.get("failed", 0), after
