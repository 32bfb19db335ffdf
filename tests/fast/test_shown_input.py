"""A digit's result shows the input the network saw (``input_png``): exactly its pixels, whatever
file the digit came in. A bare 8-bit gray 28x28 PNG already in MNIST's form is that input as it
is, and is shown as it was sent; any other file is shown as the worker encodes the pixels."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from model.images.preprocess import SHOWN_AS_SENT_BYTES
from model.recognise import Bounds, recognise
from model.runtimes.litert import LiteRTPredictor
from model.shipped import SHIPPED_MODEL

BOUNDS = Bounds(max_pixels=40_000_000, max_decoded_bytes=64 << 20, max_digits=32, seconds=5.0)


@pytest.fixture(scope="module")
def predictor() -> LiteRTPredictor:
    return LiteRTPredictor(SHIPPED_MODEL.with_suffix(".tflite").read_bytes(), version=1, threads=1)


def png(pixels: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", **options)
    return buffer.getvalue()


def with_gamma(data: bytes) -> bytes:
    """The PNG with a gAMA chunk after its header: a viewer would draw its pixels lighter or darker."""
    body = b"gAMA" + struct.pack(">I", 45455)
    chunk = struct.pack(">I", 4) + body + struct.pack(">I", zlib.crc32(body))
    return data[:33] + chunk + data[33:]


def shown(result: dict) -> bytes:
    return base64.b64decode(result["input_png"])


def pixels_of(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_a_bare_gray_digit_in_mnist_form_is_shown_as_it_was_sent(mnist, predictor):
    digits = mnist.x_test[:8]
    files = [png(digit) for digit in digits]
    readings = recognise(files, predictor, BOUNDS)
    assert [r.result["label"] for r in readings] == mnist.y_test[:8].tolist()
    assert [shown(r.result) for r in readings] == files


def test_any_other_file_is_shown_as_the_pixels_the_network_saw(mnist, predictor):
    digit = mnist.x_test[0]
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "a note a viewer may show")
    others = {
        "text chunk": png(digit, pnginfo=text),
        "gamma": with_gamma(png(digit)),
        "uncompressed": png(digit, compress_level=0),
        "rgb": png(np.stack([digit] * 3, axis=-1)),
    }
    assert len(others["uncompressed"]) > SHOWN_AS_SENT_BYTES
    readings = recognise(list(others.values()), predictor, BOUNDS)
    for name, data, reading in zip(others, others.values(), readings, strict=True):
        assert shown(reading.result) != data, name
        assert np.array_equal(pixels_of(shown(reading.result)), digit), name


def test_a_digit_not_yet_in_mnist_form_is_shown_normalised(mnist, predictor):
    digit = np.pad(mnist.x_test[1], 10)  # 48x48: scaled and centred before the network sees it
    [reading] = recognise([png(digit)], predictor, BOUNDS)
    assert pixels_of(shown(reading.result)).shape == (28, 28)
    assert reading.result["label"] == mnist.y_test[1]


def test_nothing_is_shown_where_the_caller_asks_for_none(mnist, predictor):
    [reading] = recognise([png(mnist.x_test[0])], predictor, BOUNDS, shown=[False])
    assert "input_png" not in reading.result
