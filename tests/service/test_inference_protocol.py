"""The Open Inference Protocol as its own clients speak it: tritonclient with its defaults (binary
tensors), and plain JSON through requests, against a real stack reading genuine MNIST digits."""

from __future__ import annotations

import base64
import gzip
import json
import struct
import zlib
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests

from tests.conftest import png_bytes
from tests.service.helpers import assert_read_right

triton = pytest.importorskip("tritonclient.http")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(stack):
    return triton.InferenceServerClient(url=urlsplit(stack.web_url).netloc, network_timeout=60)


def infer_url(stack, version: str | None = None) -> str:
    middle = f"/versions/{version}" if version else ""
    return f"{stack.web_url}/v2/models/digits{middle}/infer"


def test_tritonclient_sees_a_live_ready_server_and_the_model(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("digits") and client.is_model_ready("digits", "1")
    assert not client.is_model_ready("digits", "999") and not client.is_model_ready("letters")
    metadata = client.get_model_metadata("digits")
    assert metadata["name"] == "digits" and "1" in metadata["versions"]
    assert {i["name"]: (i["datatype"], i["shape"]) for i in metadata["inputs"]} == {
        "image": ("BYTES", [-1]),
        "pixels": ("UINT8", [-1, 28, 28]),
    }
    assert {o["name"]: o["datatype"] for o in metadata["outputs"]} == {"probabilities": "FP32", "label": "INT64"}
    assert {"binary_tensor_data", "classification", "model_configuration"} <= set(
        client.get_server_metadata()["extensions"]
    )


def test_tritonclient_reads_a_model_configuration_that_agrees_with_the_metadata(client):
    config = client.get_model_config("digits", "1")
    metadata = client.get_model_metadata("digits")
    assert config["name"] == "digits" and config["max_batch_size"] == 0  # the first dimension is the count
    types = {"BYTES": "TYPE_STRING", "UINT8": "TYPE_UINT8", "FP32": "TYPE_FP32", "INT64": "TYPE_INT64"}
    for kind, inputs_or_outputs in (("input", "inputs"), ("output", "outputs")):
        described = {t["name"]: (types[t["datatype"]], t["shape"]) for t in metadata[inputs_or_outputs]}
        assert {t["name"]: (t["data_type"], t["dims"]) for t in config[kind]} == described
    assert all(t["optional"] for t in config["input"])  # a request carries one of them
    with pytest.raises(triton.InferenceServerException, match="no version"):
        client.get_model_config("digits", "999")


def test_tritonclient_classification_gives_each_digits_most_likely_classes(client, mnist):
    digits = mnist.x_test[300:316]
    tensor = triton.InferInput("pixels", list(digits.shape), "UINT8")
    tensor.set_data_from_numpy(digits)
    wanted = [
        triton.InferRequestedOutput("probabilities", class_count=3),  # binary, tritonclient's default
        triton.InferRequestedOutput("label"),
    ]

    result = client.infer("digits", [tensor], outputs=wanted)

    classes, labels = result.as_numpy("probabilities"), result.as_numpy("label")
    assert classes.shape == (16, 3) and classes.dtype == object
    parsed = [[(float(v), int(i)) for v, i in (c.decode().split(":") for c in row)] for row in classes]
    assert [row[0][1] for row in parsed] == labels.tolist()  # the first class is the label
    assert all(row[0][0] >= row[1][0] >= row[2][0] >= 0 for row in parsed)  # most likely first
    assert all(len({i for _, i in row}) == 3 for row in parsed)
    assert (labels == mnist.y_test[300:316]).sum() >= 15


def test_tritonclient_binary_pixels_batch_of_64_genuine_mnist_digits(client, mnist):
    digits = mnist.x_test[:64]
    tensor = triton.InferInput("pixels", list(digits.shape), "UINT8")
    tensor.set_data_from_numpy(digits)  # binary data: tritonclient's default

    result = client.infer("digits", [tensor], request_id="batch-1")

    assert_read_right(result.as_numpy("label"), result.as_numpy("probabilities"), mnist.y_test[:64])
    response = result.get_response()
    assert response["model_name"] == "digits" and response["model_version"] == "1" and response["id"] == "batch-1"


def test_tritonclient_image_files_as_bytes_with_json_outputs(client, mnist):
    files = np.array([png_bytes(x, invert=i % 2 == 1) for i, x in enumerate(mnist.x_test[100:116])], dtype=object)
    tensor = triton.InferInput("image", [len(files)], "BYTES")
    tensor.set_data_from_numpy(files)
    wanted = [triton.InferRequestedOutput("label", binary_data=False)]

    result = client.infer("digits", [tensor], outputs=wanted, model_version="1")

    assert result.as_numpy("probabilities") is None  # only what was asked for
    assert (result.as_numpy("label") == mnist.y_test[100:116]).sum() >= 15


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_tritonclient_compressed_requests_are_read(client, mnist, algorithm):
    digits = mnist.x_test[400:432]
    tensor = triton.InferInput("pixels", list(digits.shape), "UINT8")
    tensor.set_data_from_numpy(digits)

    result = client.infer(
        "digits", [tensor], request_compression_algorithm=algorithm, response_compression_algorithm=algorithm
    )

    assert (result.as_numpy("label") == mnist.y_test[400:432]).sum() >= 31


def test_compressed_bodies_are_inflated_within_the_body_limit_and_checked(stack):
    def post(body: bytes, encoding: str) -> requests.Response:
        headers = {"Content-Encoding": encoding, "Content-Type": "application/json"}
        return requests.post(infer_url(stack), data=body, headers=headers, timeout=60)

    bomb = gzip.compress(b"{" + b" " * (21 << 20) + b"}")  # 21 MB of JSON in 21 KB, over MAX_CONTENT_LENGTH
    assert len(bomb) < 64 << 10
    answer = post(bomb, "gzip")
    assert answer.status_code == 413 and "inflates to over" in answer.json()["error"], answer.text

    one = zlib.compress(json.dumps(ONE_DIGIT).encode())
    assert post(one, "deflate").status_code == 200
    answer = post(one[:-8], "deflate")
    assert answer.status_code == 400 and "truncated" in answer.json()["error"], answer.text
    answer = post(b"not gzip at all", "gzip")
    assert answer.status_code == 400 and "not valid gzip" in answer.json()["error"], answer.text
    answer = post(one, "br")
    assert answer.status_code == 415 and "gzip, deflate" in answer.json()["error"], answer.text


def test_plain_json_through_requests(stack, mnist):
    images = [base64.b64encode(png_bytes(x)).decode() for x in mnist.x_test[200:208]]
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [8], "data": images}]}

    answer = requests.post(infer_url(stack), json=body, timeout=60)

    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert outputs["label"]["datatype"] == "INT64" and outputs["label"]["shape"] == [8]
    assert (np.array(outputs["label"]["data"]) == mnist.y_test[200:208]).sum() >= 7
    assert outputs["probabilities"]["shape"] == [8, 10] and len(outputs["probabilities"]["data"]) == 80

    pixels = {
        "inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [2, 28, 28], "data": mnist.x_test[:2].tolist()}]
    }
    answer = requests.post(infer_url(stack, "1"), json=pixels, timeout=60)
    assert answer.status_code == 200, answer.text
    assert [o for o in answer.json()["outputs"] if o["name"] == "label"][0]["data"] == mnist.y_test[:2].tolist()


def test_classification_in_plain_json(stack, mnist):
    pixels = mnist.x_test[:2].tolist()
    body = {
        "inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [2, 28, 28], "data": pixels}],
        "outputs": [{"name": "probabilities", "parameters": {"classification": 2}}],
    }

    answer = requests.post(infer_url(stack), json=body, timeout=60)

    assert answer.status_code == 200, answer.text
    [output] = answer.json()["outputs"]
    assert output["datatype"] == "BYTES" and output["shape"] == [2, 2] and len(output["data"]) == 4
    assert [int(text.split(":")[1]) for text in output["data"][::2]] == mnist.y_test[:2].tolist()


def test_a_blank_image_is_label_minus_one(stack):
    blank = base64.b64encode(png_bytes(np.zeros((28, 28), np.uint8))).decode()
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [blank]}]}
    answer = requests.post(infer_url(stack), json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    assert [o["data"] for o in answer.json()["outputs"] if o["name"] == "label"] == [[-1]]


ONE_DIGIT = {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 28, 28], "data": [0] * 784}]}


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"inputs": []}, 400, "exactly one input"),
        ({"inputs": [{"name": "digits", "datatype": "BYTES", "shape": [1], "data": ["x"]}]}, 400, "no input"),
        ({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 28, 28], "data": [0]}]}, 400, "UINT8"),
        ({"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 32, 32], "data": [0]}]}, 400, "shape"),
        (
            {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 28, 28], "data": [300] * 784}]},
            400,
            "0 to 255",
        ),
        ({"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 28, 28], "data": [1, 2]}]}, 400, "784"),
        ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["%%"]}]}, 400, "base64"),
        ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["aGVsbG8="]}]}, 415, "image[0]"),
        ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [9999], "data": []}]}, 413, "images"),
        ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1]}]}, 400, "neither data"),
        ({**ONE_DIGIT, "outputs": [{"name": "probabilities", "parameters": {"classification": 11}}]}, 400, "1 to 10"),
        ({**ONE_DIGIT, "outputs": [{"name": "probabilities", "parameters": {"classification": "3"}}]}, 400, "count"),
        ({**ONE_DIGIT, "outputs": [{"name": "label", "parameters": {"classification": 2}}]}, 400, "probabilities"),
    ],
)
def test_malformed_requests_get_the_protocols_error(stack, body, status, words):
    answer = requests.post(infer_url(stack), json=body, timeout=60)
    assert answer.status_code == status, answer.text
    assert isinstance(answer.json()["error"], str) and words in answer.json()["error"]


def test_binary_data_that_does_not_add_up_is_refused(stack):
    header = (
        b'{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 9}}]}'
    )
    payload = struct.pack("<I", 5) + b"hello"  # one element of 9 bytes, where the shape says two
    answer = requests.post(
        infer_url(stack),
        data=header + payload,
        headers={"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"},
        timeout=60,
    )
    assert answer.status_code == 400 and "exactly 2 images" in answer.json()["error"]


def test_unknown_models_and_versions_are_404(stack):
    body = {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 28, 28], "data": [0] * 784}]}
    for url in (f"{stack.web_url}/v2/models/letters/infer", infer_url(stack, "999"), infer_url(stack, "x")):
        answer = requests.post(url, json=body, timeout=30)
        assert answer.status_code == 404 and isinstance(answer.json()["error"], str), (url, answer.text)
    for path in ("digits/versions/999", "digits/versions/999/config", "letters/config"):
        assert requests.get(f"{stack.web_url}/v2/models/{path}", timeout=10).status_code == 404, path
