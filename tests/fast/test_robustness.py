"""The robustness suite: each degradation does what it says, the same way every time, and the shipped
model's scores on a small sample are in a sane range."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from model.evaluation import robustness
from model.rendering import degraded
from model.rendering.degraded import DEGRADATIONS

DIGITS = 20


def ink(image: np.ndarray) -> float:
    """Pixels at least half-strength: the strokes' area."""
    return float((image >= 0.5).sum())


def sharpness(image: np.ndarray) -> float:
    """Mean gradient magnitude: lower for a blurred image."""
    return float(np.hypot(ndimage.sobel(image, 0), ndimage.sobel(image, 1)).mean())


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist.x_test[:DIGITS]


def each(digits, name):
    """(clean, degraded) pairs of ``digits``, both float32 in [0, 1]."""
    return [(digit.astype(np.float32) / 255, degraded.degraded(digit, name, n)) for n, digit in enumerate(digits)]


@pytest.mark.parametrize("name", list(DEGRADATIONS))
def test_each_degradation_is_deterministic_changes_the_digit_and_is_a_png_to_read(digits, name):
    digit = digits[0]
    data = degraded.degrade(digit, name, 0)
    assert data == degraded.degrade(digit, name, 0)
    assert data != degraded.degrade(digit, name, 0, seed=1) or name == "thin"  # thin draws nothing at random
    image = Image.open(io.BytesIO(data))
    assert (image.format, image.mode, image.size) == ("PNG", "L", (degraded.FILE_SIDE, degraded.FILE_SIDE))
    assert not np.array_equal(np.asarray(image)[14:42, 14:42], digit)


def test_blocky_is_a_coarse_bilevel_scan_and_blurry_smooths(digits):
    for (clean, blocks), (_, smooth) in zip(each(digits, "blocky"), each(digits, "blurry"), strict=True):
        assert set(np.unique(blocks)) <= {0.0, 1.0}
        distinct_rows = 1 + int((np.abs(np.diff(blocks, axis=0)).max(axis=1) > 0).sum())
        assert distinct_rows <= round(28 * degraded.SMALL_DIGIT[1] / degraded.MNIST_BOX)  # at most 22 rows differ
        assert sharpness(smooth) < sharpness(clean)


def test_thick_and_thin_change_the_strokes_width(digits):
    for (clean, thicker), (_, thinner) in zip(each(digits, "thick"), each(digits, "thin"), strict=True):
        assert ink(thicker) > 1.3 * ink(clean)
        assert 0 < ink(thinner) < 0.8 * ink(clean)


def test_slant_leans_the_digit_either_way():
    bar = np.zeros((28, 28), np.float32)
    bar[4:24, 13:15] = 1.0  # an upright stroke
    for amount, top_moves in ((0.5, 1), (-0.5, -1)):
        leaning = degraded.shear(bar, amount)
        top, bottom = ndimage.center_of_mass(leaning[4:9])[1], ndimage.center_of_mass(leaning[19:24])[1]
        assert np.sign(top - bottom) == top_moves and abs(top - bottom) > 5
    leans = {np.sign(ndimage.center_of_mass(out[:12])[1] - ndimage.center_of_mass(out[16:])[1])
             for _, out in each(np.repeat(bar[None] * 255, 8, 0).astype(np.uint8), "slanted")}  # fmt: skip
    assert leans == {-1.0, 1.0}


def test_elastic_moves_the_strokes_but_keeps_the_ink(digits):
    for clean, moved in each(digits, "elastic"):
        assert 0.4 * ink(clean) < ink(moved) < 1.6 * ink(clean)
        assert ((clean >= 0.5) != (moved >= 0.5)).sum() > 0.2 * ink(clean)  # a fifth of the strokes moved or more


def test_low_contrast_is_faint_grainy_ink(digits):
    for clean, faint in each(digits, "low-contrast"):
        strokes = clean > 0.9
        assert 0.2 <= np.median(faint[strokes]) <= 0.45
        assert 0.005 < np.std(faint[clean == 0]) < 0.04


def test_salt_adds_specks_off_the_strokes(digits):
    for clean, specked in each(digits, "salt"):
        added = (specked == 1.0) & (clean == 0)
        assert 0.02 * clean.size < added.sum() < 0.09 * clean.size
        assert np.array_equal(specked[~added & (specked != 1.0)], clean[~added & (specked != 1.0)])


def stroke_width(image: np.ndarray) -> float:
    """Twice the median distance from the strokes' centre lines to their edge: their width in pixels."""
    strokes = image >= 0.5
    return 2 * float(np.median(ndimage.distance_transform_edt(strokes)[degraded.skeleton(strokes)]))


def test_canvas_strokes_are_thin_and_even(digits):
    pairs = each(digits, "canvas")
    drawn, written = [stroke_width(out) for _, out in pairs], [stroke_width(clean) for clean, _ in pairs]
    assert max(drawn) <= 2.0 and np.median(written) >= 2.0, (drawn, written)
    assert np.std(drawn) < 0.5 * np.std(written)  # one pen on the canvas; MNIST's writers' pens vary


def test_skeleton_of_a_bar_is_its_centre_line():
    bar = np.zeros((20, 20), bool)
    bar[5:10, 2:18] = True
    lines = degraded.skeleton(bar)
    assert lines[7, 5:15].all() and lines.sum() <= 16 and not lines[5].any() and not lines[9].any()


@pytest.mark.slow
def test_the_shipped_model_reads_degraded_digits_in_a_sane_range(mnist):
    from model.runtimes.keras_predictor import KerasPredictor
    from model.shipped import SHIPPED_MODEL

    count = 200
    suite = robustness.prepare(mnist.x_test[:count], jobs=1)
    scores = robustness.accuracies(KerasPredictor.from_file(SHIPPED_MODEL), suite, mnist.y_test[:count])
    assert set(scores) == {*DEGRADATIONS, robustness.MEAN}
    assert all(0.6 <= scores[name] <= 1.0 for name in DEGRADATIONS), scores
    assert 0.8 <= scores[robustness.MEAN] < 0.995, scores  # harder than MNIST itself, not hopeless
    again = robustness.prepare(mnist.x_test[:count], jobs=2)
    assert all(np.array_equal(a.inputs, b.inputs) for a, b in zip(suite, again, strict=True))  # whatever the split
