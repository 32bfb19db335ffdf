"""The renderings of MNIST digits as people send them, and the shipped model's floor on each."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model.evaluation.digits import AS_PNG, score
from model.rendering.digit import RENDERINGS, render

FLOOR_IMAGES = 300
FLOOR = 0.99  # the target for the full 10,000 too (python -m model.evaluation digits reports those)


@pytest.mark.parametrize("rendering", list(RENDERINGS))
def test_renderings_are_deterministic_files_of_their_kind(mnist, rendering):
    digit = mnist.x_test[0]
    data = render(digit, rendering, 0)
    assert data == render(digit, rendering, 0)
    assert data != render(digit, rendering, 1) and data != render(digit, rendering, 0, seed=1)
    image = Image.open(io.BytesIO(data))
    assert image.format == ("JPEG" if rendering in ("jpeg", "photo") else "PNG")
    assert 200 <= image.width <= 1000 and 200 <= image.height <= 800
    pixels = np.asarray(image.convert("RGBA"), dtype=np.float32)
    if rendering == "rgba":
        assert pixels[..., 3].min() == 0 and pixels[..., 3].max() > 200  # transparent paper, opaque strokes
    else:
        assert np.median(pixels[..., :3]) > 120  # dark ink on light paper, mostly paper


@pytest.fixture(scope="module")
def shipped():
    from model.runtimes.keras_predictor import KerasPredictor
    from model.shipped import SHIPPED_MODEL

    return KerasPredictor.from_file(SHIPPED_MODEL)


@pytest.mark.slow
@pytest.mark.parametrize("rendering", [AS_PNG, *RENDERINGS])
def test_the_shipped_model_reads_each_rendering(mnist, shipped, rendering):
    digits, labels = mnist.x_test[:FLOOR_IMAGES], mnist.y_test[:FLOOR_IMAGES]
    row = score(shipped, digits, labels, rendering)
    assert row.accuracy >= FLOOR, f"{rendering}: {row.correct}/{row.total}, {row.rejected} turned down"
