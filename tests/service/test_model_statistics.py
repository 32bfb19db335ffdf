"""Triton's statistics extension: tritonclient's get_inference_statistics against a real stack,
whose counts are the requests sent and whose times add up."""

from __future__ import annotations

from urllib.parse import urlsplit

import numpy as np
import pytest
import requests

from tests.conftest import png_bytes

triton = pytest.importorskip("tritonclient.http")

pytestmark = pytest.mark.slow


def stat_of(statistics: dict, version: str) -> dict:
    (entry,) = [s for s in statistics["model_stats"] if s["name"] == "digits" and s["version"] == version]
    return entry


def test_statistics_count_the_requests_sent_and_their_times_add_up(stack, mnist):
    client = triton.InferenceServerClient(url=urlsplit(stack.web_url).netloc, network_timeout=60)
    assert "statistics" in client.get_server_metadata()["extensions"]
    before = stat_of(client.get_inference_statistics("digits"), "1")
    sent = 17
    for index in range(sent):
        tensor = triton.InferInput("pixels", [1, 28, 28], "UINT8")
        tensor.set_data_from_numpy(mnist.x_test[index : index + 1])
        assert client.infer("digits", [tensor]).as_numpy("label")[0] == mnist.y_test[index]
    batch = triton.InferInput("pixels", [8, 28, 28], "UINT8")
    batch.set_data_from_numpy(mnist.x_test[100:108])
    client.infer("digits", [batch])  # 8 images: 8 requests to the model, in one call or a few

    after = stat_of(client.get_inference_statistics("digits"), "1")
    grew = {
        name: after["inference_stats"][name]["count"] - before["inference_stats"][name]["count"]
        for name in after["inference_stats"]
    }
    ns = {
        name: after["inference_stats"][name]["ns"] - before["inference_stats"][name]["ns"]
        for name in after["inference_stats"]
    }
    assert grew["success"] == sent + 8 and grew["fail"] == 0
    assert after["inference_count"] - before["inference_count"] == sent + 8
    assert sent + 1 <= after["execution_count"] - before["execution_count"] <= sent + 8  # one call per request at least
    for part in ("queue", "compute_input", "compute_infer", "compute_output"):
        assert grew[part] == sent + 8 and ns[part] >= 0, part
    compute = ns["compute_input"] + ns["compute_infer"] + ns["compute_output"]
    assert ns["compute_infer"] > 0 and ns["queue"] > 0
    assert ns["queue"] + compute <= ns["success"]
    assert ns["success"] < (sent + 8) * 10 * 10**9  # each well under 10 s on an idle stack
    assert after["last_inference"] >= before["last_inference"] > 0 or before["inference_count"] == 0

    # The same figures through each of the extension's routes.
    assert stat_of(client.get_inference_statistics("digits", "1"), "1")["inference_count"] == after["inference_count"]
    assert stat_of(client.get_inference_statistics(), "1")["inference_count"] == after["inference_count"]


def test_statistics_refuse_other_models_and_versions(stack):
    for path in (
        "/v2/models/letters/stats",
        "/v2/models/digits/versions/999/stats",
        "/v2/models/digits/versions/x/stats",
    ):
        response = requests.get(f"{stack.web_url}{path}", timeout=10)
        assert response.status_code == 404 and "error" in response.json(), path


def test_a_failed_job_counts_as_a_failure_of_the_version_in_hand(stack, mnist):
    client = triton.InferenceServerClient(url=urlsplit(stack.web_url).netloc, network_timeout=60)
    before = stat_of(client.get_inference_statistics("digits"), "1")["inference_stats"]
    broken = triton.InferInput("image", [1], "BYTES")
    truncated = png_bytes(mnist.x_test[12])[:60]  # passes the web's header check, fails in the worker
    broken.set_data_from_numpy(np.array([truncated], dtype=object))
    with pytest.raises(triton.InferenceServerException):
        client.infer("digits", [broken])
    after = stat_of(client.get_inference_statistics("digits"), "1")["inference_stats"]
    assert after["fail"]["count"] - before["fail"]["count"] == 1
    assert after["success"]["count"] == before["success"]["count"]
