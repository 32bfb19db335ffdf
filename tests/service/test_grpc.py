"""The Open Inference Protocol over gRPC (web/grpc_server.py), as NVIDIA's tritonclient.grpc
speaks it at its defaults (raw tensor contents), against a real stack reading genuine MNIST
digits: health, metadata, the model configuration, inference, refusals as gRPC status codes,
and the predict token in the call's ``authorization`` metadata."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.conftest import TOKEN, png_bytes
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
