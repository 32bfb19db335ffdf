"""Any image that decodes gets an answer that says something: a reading, a blank with its reason,
or a failure naming what is wrong with the image; never an internal error (preprocessing_failed),
whether it is read as a digit or as a number. Hypothesis draws the images: noise, scattered
pixels, strokes, tiny and long ones, and genuine MNIST digits tiled in rows."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image, ImageDraw

from model.recognise import Bounds, recognise

BOUNDS = Bounds(max_pixels=40_000_000, max_decoded_bytes=64 << 20, max_digits=32, seconds=5.0)
sides = st.integers(1, 120)


@st.composite
def scattered(draw) -> np.ndarray:
    image = np.zeros((draw(sides), draw(sides)), np.uint8)
    count = draw(st.integers(0, 60))
    rows = draw(arrays(np.int64, count, elements=st.integers(0, image.shape[0] - 1)))
    cols = draw(arrays(np.int64, count, elements=st.integers(0, image.shape[1] - 1)))
    image[rows, cols] = 255
    return image


@st.composite
def strokes(draw) -> np.ndarray:
    image = Image.new("L", (draw(sides), draw(sides)), 0)
    pen = ImageDraw.Draw(image)
    for _ in range(draw(st.integers(0, 12))):
        ends = draw(st.lists(st.integers(-10, 130), min_size=4, max_size=4))
        pen.line(ends, fill=draw(st.integers(1, 255)), width=draw(st.integers(1, 10)))
    return np.asarray(image)


@st.composite
def tiled_digits(draw, digits: np.ndarray) -> np.ndarray:
    rows, columns = draw(st.integers(1, 5)), draw(st.integers(1, 8))
    picks = draw(arrays(np.int64, (rows, columns), elements=st.integers(0, len(digits) - 1)))
    scale = draw(st.integers(1, 3))
    return np.kron(np.block([[digits[i] for i in row] for row in picks]), np.ones((scale, scale), np.uint8))


def png(pixels: np.ndarray, dark_on_light: bool) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(255 - pixels if dark_on_light else pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_every_image_is_answered_without_an_internal_error(mnist):
    digits = mnist.x_test[:500]
    noise = arrays(np.uint8, st.tuples(sides, sides))

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.one_of(noise, scattered(), strokes(), tiled_digits(digits)), st.booleans())
    def answered(pixels: np.ndarray, dark_on_light: bool) -> None:
        data = png(pixels, dark_on_light)
        for mode in ("digit", "number"):
            [reading] = recognise([data], None, BOUNDS, reads=[mode])
            assert reading is not None
            assert not (reading.error and reading.error["code"] == "preprocessing_failed"), (mode, reading.error)

    answered()


def test_a_digit_in_mnist_form_is_not_searched_for_several_digits(mnist, monkeypatch):
    """A 28x28 digit in MNIST's form (the inference protocol's pixels) is the network's input as it
    is: it is never decoded as an image file to look for a number in it, while an image file is."""
    import model.recognise as recognising
    from model.recognise import mnist_pixels_file

    planned = []
    plan_number = recognising.plan_number
    monkeypatch.setattr(recognising, "plan_number", lambda data, *a: planned.append(data) or plan_number(data, *a))
    digit = mnist.x_test[0]
    scan = png(np.kron(digit, np.ones((3, 3), np.uint8)), dark_on_light=True)
    readings = recognise([digit, mnist_pixels_file(digit), scan], None, BOUNDS)
    assert [r.error["code"] for r in readings] == ["model_unavailable"] * 3
    assert len(planned) == 1 and planned[0].startswith(b"\x89PNG")
