"""The Open Inference Protocol over gRPC (web/grpc_server.py), as NVIDIA's tritonclient.grpc
speaks it at its defaults (raw tensor contents), against a real stack reading genuine MNIST
digits: health, metadata, the model configuration, inference, refusals as gRPC status codes,
the predict token in the call's ``authorization`` metadata, the standard health service
(grpc.health.v1, what Kubernetes' ``grpc:`` probes ask) and the drain at SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from stack.processes import Stack
from tests.conftest import OUTPUT, TOKEN, png_bytes, private_redis
from tests.service.helpers import assert_read_right

triton = pytest.importorskip("tritonclient.grpc")
pytestmark = pytest.mark.slow

PREDICT_TOKEN = "grpc-predict-token-not-secret"


@pytest.fixture(scope="module")
def address(stack) -> str:
    return stack.start_grpc()


@pytest.fixture(scope="module")
def guarded_address(stack) -> str:
    """A second gRPC server on the same Redis and workers, where predictions need a token."""
    env = {"PREDICTIONS_NEED_TOKEN": "true", "DIGITS_PREDICT_TOKEN": PREDICT_TOKEN}
    return stack.start_grpc(name="grpc-guarded", env=env)


@pytest.fixture(scope="module")
def client(address):
    with triton.InferenceServerClient(url=address) as client:
        yield client


def pixels_input(digits: np.ndarray) -> triton.InferInput:
    tensor = triton.InferInput("pixels", list(digits.shape), "UINT8")
    tensor.set_data_from_numpy(digits)  # raw_input_contents: tritonclient's default
    return tensor


def refusal(call) -> triton.InferenceServerException:
    with pytest.raises(triton.InferenceServerException) as refused:
        call()
    return refused.value


def test_tritonclient_sees_a_live_ready_server_and_the_model(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("digits") and client.is_model_ready("digits", "1")
    assert not client.is_model_ready("digits", "999") and not client.is_model_ready("letters")
    metadata = client.get_model_metadata("digits", as_json=True)
    assert metadata["name"] == "digits" and "1" in metadata["versions"]
    assert {i["name"]: (i["datatype"], i["shape"]) for i in metadata["inputs"]} == {
        "image": ("BYTES", ["-1"]),  # int64 fields are strings in protobuf's JSON
        "pixels": ("UINT8", ["-1", "28", "28"]),
    }
    assert {o["name"]: o["datatype"] for o in metadata["outputs"]} == {"probabilities": "FP32", "label": "INT64"}
    server = client.get_server_metadata(as_json=True)
    assert {"binary_tensor_data", "classification", "model_configuration"} <= set(server["extensions"])


def test_the_model_configuration_agrees_with_the_metadata(client):
    config = client.get_model_config("digits", "1", as_json=True)["config"]
    assert config["name"] == "digits" and config.get("max_batch_size", 0) == 0
    assert {t["name"]: (t["data_type"], t["dims"]) for t in config["input"]} == {
        "image": ("TYPE_STRING", ["-1"]),
        "pixels": ("TYPE_UINT8", ["-1", "28", "28"]),
    }
    assert all(t["optional"] for t in config["input"])
    assert {t["name"]: t["data_type"] for t in config["output"]} == {
        "probabilities": "TYPE_FP32",
        "label": "TYPE_INT64",
    }
    assert refusal(lambda: client.get_model_config("digits", "999")).status() == "StatusCode.NOT_FOUND"


def test_a_batch_of_64_genuine_mnist_digits_is_read(client, mnist):
    digits = mnist.x_test[:64]

    result = client.infer("digits", [pixels_input(digits)], request_id="batch-1")

    assert_read_right(result.as_numpy("label"), result.as_numpy("probabilities"), mnist.y_test[:64])
    response = result.get_response()
    assert response.model_name == "digits" and response.model_version == "1" and response.id == "batch-1"


def test_image_files_as_bytes_one_output_asked_for(client, mnist):
    files = np.array([png_bytes(x, invert=i % 2 == 1) for i, x in enumerate(mnist.x_test[100:116])], dtype=object)
    tensor = triton.InferInput("image", [len(files)], "BYTES")
    tensor.set_data_from_numpy(files)

    result = client.infer("digits", [tensor], outputs=[triton.InferRequestedOutput("label")], model_version="1")

    assert result.as_numpy("probabilities") is None  # only what was asked for
    assert (result.as_numpy("label") == mnist.y_test[100:116]).sum() >= 15


def test_classification_gives_each_digits_most_likely_classes(client, mnist):
    digits = mnist.x_test[300:316]
    wanted = [triton.InferRequestedOutput("probabilities", class_count=3), triton.InferRequestedOutput("label")]

    result = client.infer("digits", [pixels_input(digits)], outputs=wanted)

    classes, labels = result.as_numpy("probabilities"), result.as_numpy("label")
    assert classes.shape == (16, 3)
    parsed = [[(float(v), int(i)) for v, i in (c.decode().split(":") for c in row)] for row in classes]
    assert [row[0][1] for row in parsed] == labels.tolist()
    assert all(row[0][0] >= row[1][0] >= row[2][0] >= 0 for row in parsed)
    assert (labels == mnist.y_test[300:316]).sum() >= 15


def test_typed_contents_are_read_as_well_as_raw(address, mnist):
    """KServe's clients send typed contents (uint_contents, bytes_contents), not raw bytes."""
    digits = mnist.x_test[500:508]
    request = service_pb2.ModelInferRequest(model_name="digits")
    pixels = request.inputs.add(name="pixels", datatype="UINT8", shape=[8, 28, 28])
    pixels.contents.uint_contents.extend(digits.ravel().tolist())
    files = request.inputs  # the same request, as PNG files instead
    with grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        answer = stub.ModelInfer(request, timeout=60)
        del files[:]
        files.add(name="image", datatype="BYTES", shape=[8]).contents.bytes_contents.extend(map(png_bytes, digits))
        answer_files = stub.ModelInfer(request, timeout=60)
    for response in (answer, answer_files):
        index = [o.name for o in response.outputs].index("label")
        labels = np.frombuffer(response.raw_output_contents[index], "<i8")
        assert (labels == mnist.y_test[500:508]).sum() >= 7


@pytest.mark.parametrize(
    ("tensor", "says"),
    [
        (lambda d: ("pixels", [2, 28, 28], "UINT8", d[:1].tobytes()), "invalid_binary_data"),  # one digit's bytes
        (lambda d: ("pixels", [1, 28, 28], "FP32", d[:1].astype(np.float32).tobytes()), "invalid_datatype"),
        (lambda d: ("pixels", [1, 784], "UINT8", d[:1].tobytes()), "invalid_shape"),
        (lambda d: ("letters", [1], "BYTES", b"\0\0\0\0"), "unknown_input"),
        (lambda d: ("image", [1], "BYTES", b"\4\0\0\0nope"), "not_an_image"),  # bytes, not an image file
    ],
)
def test_a_malformed_tensor_is_answered_invalid_argument_saying_why(address, mnist, tensor, says):
    name, shape, datatype, raw = tensor(mnist.x_test)
    request = service_pb2.ModelInferRequest(model_name="digits", raw_input_contents=[raw])
    request.inputs.add(name=name, datatype=datatype, shape=shape)
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as refused:
        service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=60)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"({says})" in refused.value.details()


def test_an_unknown_model_is_not_found(client, mnist):
    refused = refusal(lambda: client.infer("letters", [pixels_input(mnist.x_test[:1])]))
    assert refused.status() == "StatusCode.NOT_FOUND" and "unknown_model" in refused.message()


def test_the_predict_token_is_asked_for_in_the_authorization_metadata(guarded_address, mnist):
    digits = mnist.x_test[600:608]
    with triton.InferenceServerClient(url=guarded_address) as client:
        missing = refusal(lambda: client.infer("digits", [pixels_input(digits)]))
        wrong = refusal(lambda: client.infer("digits", [pixels_input(digits)], headers={"authorization": "Bearer no"}))
        metadata = refusal(lambda: client.get_model_metadata("digits"))
        assert client.is_server_live()  # health needs no token, as over HTTP

        for token in (PREDICT_TOKEN, TOKEN):  # the admin token opens predictions too
            result = client.infer("digits", [pixels_input(digits)], headers={"authorization": f"Bearer {token}"})
            assert (result.as_numpy("label") == mnist.y_test[600:608]).sum() >= 7
    assert missing.status() == "StatusCode.UNAUTHENTICATED" and "(unauthorized)" in missing.message()
    assert wrong.status() == "StatusCode.PERMISSION_DENIED" and "(forbidden)" in wrong.message()
    assert metadata.status() == "StatusCode.UNAUTHENTICATED"


def test_statistics_over_grpc_count_what_was_served(client, mnist):
    before = client.get_inference_statistics("digits", as_json=True)["model_stats"]
    client.infer("digits", [pixels_input(mnist.x_test[:3])])
    after = client.get_inference_statistics("digits", "1", as_json=True)["model_stats"]
    counted = {s["version"]: int(s.get("inference_count", 0)) for s in before}
    (version_1,) = after
    assert version_1["name"] == "digits" and int(version_1["inference_count"]) - counted.get("1", 0) == 3
    assert "statistics" in client.get_server_metadata(as_json=True)["extensions"]


SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
PROTOCOL = "inference.GRPCInferenceService"


def health(channel: grpc.Channel, service: str = "") -> int:
    """The health service's status for ``service`` ("" : the server as a whole, what a probe asks)."""
    request = health_pb2.HealthCheckRequest(service=service)
    return health_pb2_grpc.HealthStub(channel).Check(request, timeout=10).status


def protocol_health(channel: grpc.Channel) -> tuple[bool, bool]:
    """Triton's ServerLive and ServerReady."""
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    live = stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=10).live
    return live, stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=10).ready


def probe(address: str, *options: str) -> int:
    """The exit status of ``python -m web.grpc_health`` (docker-compose's healthcheck) against ``address``."""
    return subprocess.run([sys.executable, "-m", "web.grpc_health", address, *options], timeout=30).returncode


def test_the_health_service_says_serving_while_a_worker_is_live(address):
    with grpc.insecure_channel(address) as channel:
        assert health(channel) == SERVING and health(channel, PROTOCOL) == SERVING
        assert health(channel, "liveness") == SERVING
        assert protocol_health(channel) == (True, True)
        with pytest.raises(grpc.RpcError) as unknown:
            health(channel, "letters")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert probe(address) == 0


def test_without_a_worker_or_without_redis_the_health_service_says_not_serving_but_live():
    with private_redis() as server:
        alone = Stack(server.url, OUTPUT / "grpc-alone", env={"DIGITS_ADMIN_TOKEN": TOKEN, "SECRET_KEY": "not-secret"})
        try:
            address = alone.start_grpc()
            with grpc.insecure_channel(address) as channel:
                assert health(channel) == NOT_SERVING and health(channel, PROTOCOL) == NOT_SERVING
                assert health(channel, "liveness") == SERVING
                assert protocol_health(channel) == (True, False)
                assert probe(address) == 1 and probe(address, "--service", "liveness") == 0
                server.stop()  # Redis away
                assert health(channel) == NOT_SERVING and health(channel, "liveness") == SERVING
        finally:
            alone.stop_all()


def test_sigterm_says_not_serving_at_once_serves_on_for_the_drain_then_exits(stack, mnist):
    drain_s = 3.0
    address = stack.start_grpc(name="grpc-drain", env={"DRAIN_SECONDS": str(drain_s)})
    process = stack.processes["grpc-drain"]
    digits = mnist.x_test[:8]
    request = service_pb2.ModelInferRequest(model_name="digits", raw_input_contents=[digits.tobytes()])
    request.inputs.add(name="pixels", datatype="UINT8", shape=[8, 28, 28])
    with grpc.insecure_channel(address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=30)
        assert next(watch).status == SERVING and health(channel) == SERVING

        os.kill(process.pid, signal.SIGTERM)
        signalled = time.monotonic()
        assert next(watch).status == NOT_SERVING  # a watcher (a client's load balancing) is told at once
        told_s = time.monotonic() - signalled
        watch.cancel()
        assert health(channel) == NOT_SERVING and health(channel, PROTOCOL) == NOT_SERVING
        assert protocol_health(channel) == (True, False)  # ServerReady agrees; still live
        assert health(channel, "liveness") == SERVING  # a liveness probe must not restart a draining pod

        time.sleep(max(0.0, drain_s / 2 - (time.monotonic() - signalled)))
        answer = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
        index = [o.name for o in answer.outputs].index("label")
        assert (np.frombuffer(answer.raw_output_contents[index], "<i8") == mnist.y_test[:8]).sum() >= 7
        served_s = time.monotonic() - signalled

    assert process.wait(timeout=drain_s + 15) == 0
    exited_s = time.monotonic() - signalled
    print(
        f"\nSIGTERM: NOT_SERVING told in {told_s:.3f} s, a call answered at {served_s:.2f} s, exit at {exited_s:.2f} s"
    )
    assert told_s < 1 and served_s < drain_s <= exited_s
