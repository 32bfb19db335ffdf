"""Whole numbers: plan_number, one model call, NumberPlan.choose; on genuine MNIST test digits and the real model."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from model.images.preprocess import NotADigit, preprocess
from model.numbers import segment
from model.numbers.segment import NumberReading, TooManyDigits, plan_number, read_number
from model.rendering.digit import render
from model.rendering.number import render_number

FLOOR_NUMBERS = 150  # per spacing, half on paper, half photographed
# Floors below what these numbers measure (gap 142/150, touching 134/150) and python -m model.evaluation digits
# --numbers on 1,000 per row (97 % and 90 %).
FLOORS = {"gap": 0.92, "touching": 0.85}
INK, PAPER = 30, 235


@pytest.fixture(scope="module")
def predictor():
    from model.runtimes.keras_predictor import KerasPredictor
    from model.shipped import SHIPPED_MODEL

    return KerasPredictor.from_file(SHIPPED_MODEL)


def number_png(digits: list[np.ndarray], gap: int = 4, scale: int = 5) -> bytes:
    """MNIST digits (uint8, light on dark) side by side, ``gap`` pixels between their 28x28 frames
    (negative: overlapping), as dark ink on white paper, scaled up ``scale`` times."""
    width = 28 * len(digits) + gap * (len(digits) - 1) + 56
    strip = np.zeros((56, width), np.float32)
    for n, digit in enumerate(digits):
        left = 28 + n * (28 + gap)
        np.maximum(strip[14:42, left : left + 28], digit / 255, out=strip[14:42, left : left + 28])
    page = np.round(PAPER - strip * (PAPER - INK)).astype(np.uint8)
    image = Image.fromarray(page).resize((width * scale, 56 * scale), Image.Resampling.BICUBIC)
    return _encode(image)


def _encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def confident_digits(mnist, predictor, label: int, count: int) -> list[np.ndarray]:
    """The first ``count`` test digits of ``label`` that the network reads right and surely one at a time."""
    found = []
    for index in np.flatnonzero(mnist.y_test == label)[:50]:
        digit = mnist.x_test[index]
        if predictor.probabilities(digit[None] / 255)[0, label] > 0.99:
            found.append(digit)
            if len(found) == count:
                return found
    raise AssertionError(f"not {count} confident {label}s in the first test digits")


def iou(a, b) -> float:
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union


@pytest.fixture(scope="module")
def readings(mnist, predictor):
    """4-digit numbers of each floor's spacing, planned, read in ONE model call together with single
    digits (as the service batches them), and chosen: spacing -> [(truth, reading)]."""
    numbers = {
        spacing: [
            render_number(mnist.x_test, mnist.y_test, 4, spacing, rendering, index)
            for index in range(FLOOR_NUMBERS // 2)
            for rendering in ("paper", "photo")
        ]
        for spacing in FLOORS
    }
    plans = {spacing: [plan_number(n.data) for n in found] for spacing, found in numbers.items()}
    singles = np.stack([preprocess(render(mnist.x_test[i], "paper", i)) for i in range(20)])
    everything = [p.inputs for found in plans.values() for p in found]
    probabilities = predictor.probabilities(np.concatenate([singles, *everything]))
    assert (probabilities[: len(singles)].argmax(axis=1) == mnist.y_test[:20]).mean() >= 0.95  # singles unharmed
    start, read = len(singles), {}
    for spacing, found in plans.items():
        read[spacing] = []
        for number, plan in zip(numbers[spacing], found, strict=True):
            read[spacing].append((number, plan.choose(probabilities[start : start + len(plan.groups)])))
            start += len(plan.groups)
    return read


@pytest.mark.slow  # plans 300 numbers (about 20 s)
@pytest.mark.parametrize("spacing", list(FLOORS))
def test_numbers_are_read_whole(readings, spacing):
    right = sum(reading.text == number.text for number, reading in readings[spacing])
    assert right / len(readings[spacing]) >= FLOORS[spacing], f"{spacing}: {right}/{len(readings[spacing])}"


@pytest.mark.slow
def test_a_reading_says_where_each_digit_is_in_the_image_left_to_right(readings):
    for number, reading in readings["gap"]:
        if reading.text != number.text:
            continue
        lefts = [digit.box[0] for digit in reading.digits]
        assert lefts == sorted(lefts)
        assert all(iou(digit.box, truth) > 0.5 for digit, truth in zip(reading.digits, number.boxes, strict=True))


@pytest.mark.slow
def test_a_reading_holds_each_digit_as_the_network_saw_it(readings):
    number, reading = readings["gap"][0]
    assert reading.text == number.text
    for digit in reading.digits:
        assert digit.input.shape == (28, 28) and digit.input.dtype == np.float32
        assert digit.input.max() == pytest.approx(1.0) and digit.input.min() >= 0
        assert len(digit.probabilities) == 10 and digit.label == int(np.argmax(digit.probabilities))
        assert digit.confidence == max(digit.probabilities)
        com = ndimage.center_of_mass(digit.input)
        assert abs(com[0] - 14) <= 0.5 and abs(com[1] - 14) <= 0.5  # MNIST-style, as preprocess makes it
    assert 0 < reading.confidence <= np.prod([d.confidence for d in reading.digits]) + 1e-9
    as_dict = reading.as_dict()
    assert as_dict["text"] == number.text and len(as_dict["digits"]) == 4 and as_dict["reason"] is None


def test_boxes_are_in_the_pixels_of_the_image_sent_even_a_big_jpeg(mnist, predictor):
    number = render_number(mnist.x_test, mnist.y_test, 3, "gap", "paper", 5)
    image = Image.open(io.BytesIO(number.data)).convert("RGB")
    big = image.resize((image.width * 4, image.height * 4), Image.Resampling.BICUBIC)  # decoded in draft mode
    reading = read_number(_encode(big, "JPEG", quality=90), predictor)
    assert reading.text == number.text
    for digit, truth in zip(reading.digits, number.boxes, strict=True):
        assert iou(digit.box, [4 * v for v in truth]) > 0.5


def test_leading_zeros_are_kept(mnist, predictor):
    zeros, seven = confident_digits(mnist, predictor, 0, 2), confident_digits(mnist, predictor, 7, 1)
    reading = read_number(number_png([*zeros, *seven]), predictor)
    assert reading.text == "007"


def two_strokes(digit: np.ndarray, label: int, predictor) -> np.ndarray | None:
    """The digit with a one-pixel band of ink erased so that it falls into two strokes, each at least
    15 % of its ink, still read as ``label`` on its own; None if no band does that."""
    rows, cols = np.flatnonzero(digit.max(axis=1) >= 128), np.flatnonzero(digit.max(axis=0) >= 128)
    for band in [(slice(r, r + 1), slice(None)) for r in range(rows[0] + 2, rows[-1] - 1)] + [
        (slice(None), slice(c, c + 1)) for c in range(cols[0] + 2, cols[-1] - 1)
    ]:
        broken = digit.copy()
        broken[band] = 0
        labels, count = ndimage.label(broken >= 128, structure=np.ones((3, 3)))
        areas = np.bincount(labels.ravel())[1:]
        if (
            count == 2
            and areas.min() >= 0.15 * areas.sum()
            and predictor.probabilities(broken[None] / 255)[0, label] > 0.95
        ):
            return broken
    return None


@pytest.mark.parametrize("label", [5, 4, 7])
def test_a_digit_in_two_strokes_stays_one_digit(mnist, predictor, label):
    # A 5 whose top bar is detached, a 4 or a 7 written in two strokes: a band of ink erased.
    broken = [
        b
        for d in np.flatnonzero(mnist.y_test == label)[:60]
        if (b := two_strokes(mnist.x_test[d], label, predictor)) is not None
    ]
    assert len(broken) >= 3, f"too few {label}s fall into two strokes"
    neighbour = confident_digits(mnist, predictor, 3, 1)[0]
    for digit in broken[:3]:
        assert read_number(number_png([digit]), predictor).text == str(label)
        assert read_number(number_png([neighbour, digit, neighbour], gap=6), predictor).text == f"3{label}3"


def test_a_blank_image_reads_as_no_digits_with_the_reason(predictor):
    white = _encode(Image.new("L", (400, 200), 250))
    with pytest.raises(NotADigit, match="blank"):
        plan_number(white)
    reading = read_number(white, predictor)
    assert reading == NumberReading.blank(reading.reason)
    assert reading.text == "" and reading.digits == () and "blank" in reading.reason
    assert reading.as_dict()["text"] == ""


def dot_matrix_seven() -> np.ndarray:
    """A 7 as a 5x7 dot-matrix display shows it: separate round dots, dark on white."""
    rows = ["11111", "00001", "00010", "00100", "01000", "01000", "01000"]
    image = np.full((7 * 12 + 40, 5 * 12 + 40), 250, np.uint8)
    for y, row in enumerate(rows):
        for x, lit in enumerate(row):
            if lit == "1":
                yy, xx = np.ogrid[-4:5, -4:5]
                image[20 + 12 * y + 2 : 20 + 12 * y + 11, 20 + 12 * x + 2 : 20 + 12 * x + 11][yy**2 + xx**2 <= 16] = 20
    return image


@pytest.mark.parametrize("size", [(3, 1), (1, 7), (200, 100)])
def test_ink_only_in_single_pixels_reads_as_blank(predictor, size):
    image = np.full(size[::-1], 250, np.uint8)
    image[::3, ::5] = 10  # specks of one pixel, none touching another

    reading = read_number(_encode(Image.fromarray(image)), predictor)

    assert reading.text == "" and "blank" in reading.reason, reading


@pytest.mark.parametrize("layout", ["rows of digits", "dot matrix"])
def test_ink_in_no_one_line_of_digit_sized_strokes_reads_as_no_number_with_the_reason(mnist, predictor, layout):
    if layout == "rows of digits":  # a sheet of 4 rows of 4 MNIST digits
        ink = np.concatenate([np.concatenate(list(mnist.x_test[r * 4 : r * 4 + 4]), axis=1) for r in range(4)])
        image = 255 - ink
    else:
        image = dot_matrix_seven()

    reading = read_number(_encode(Image.fromarray(image)), predictor)

    assert reading.text == "" and "no number found" in reading.reason, reading


def test_more_digits_than_allowed_are_refused_before_any_candidate_is_normalised(mnist, monkeypatch):
    number = render_number(mnist.x_test, mnist.y_test, 8, "gap", "paper", 0)

    def not_now(*args):
        raise AssertionError("a candidate was normalised")

    monkeypatch.setattr(segment, "fit_and_centre", not_now)
    with pytest.raises(TooManyDigits, match="more than the limit of 4"):
        plan_number(number.data, max_digits=4)


def test_choose_checks_it_was_given_the_plans_probabilities(mnist):
    plan = plan_number(render_number(mnist.x_test, mnist.y_test, 2, "gap", "paper", 0).data)
    assert plan.inputs.shape == (len(plan.groups), 28, 28) and plan.inputs.dtype == np.float32
    with pytest.raises(ValueError, match="probabilities"):
        plan.choose(np.full((len(plan.groups) + 1, 10), 0.1))


# Recorded from preprocess() before model/preprocess.py was refactored for segment.py (commit 151bb2c);
# the refactoring must not change a single bit of what the network sees.
PREPROCESS_DIGEST = "9d376ea0cab4d697837c13d6195bdc4f5a52329c3cf8ed0ababfd40e503e057f"


def test_preprocess_is_unchanged_bit_for_bit(mnist):
    digest = hashlib.sha256()
    for index in range(12):
        for rendering in ("paper", "photo", "rgba", "noise"):
            digest.update(preprocess(render(mnist.x_test[index], rendering, index)).tobytes())
    assert digest.hexdigest() == PREPROCESS_DIGEST


def test_digits_right_counts_as_ocr_does():
    from model.evaluation.numbers import digits_right

    assert digits_right("1234", "1234") == 4
    assert digits_right("12834", "1234") == 3  # one digit too many costs one
    assert digits_right("124", "1234") == 3  # one missed costs one
    assert digits_right("1334", "1234") == 3
    assert digits_right("", "1234") == 0 and digits_right("98765432", "12") == 0


def test_a_batch_reads_numbers_and_digits_in_one_model_call_each_bounded(mnist, predictor):
    from model.recognise import Bounds, recognise
    from tests.conftest import png_bytes

    number = render_number(mnist.x_test, mnist.y_test, 3, "gap", "paper", 1)  # "248", read right
    digit = png_bytes(mnist.x_test[0], invert=True)
    bounds = Bounds(40_000_000, 64 * 2**20, max_digits=8, seconds=5.0)
    read_digit, read_number_, blank = recognise(
        [digit, number.data, _encode(Image.new("L", (300, 100), 250))],
        predictor,
        bounds,
        reads=["digit", "number", "number"],
    )
    assert read_digit.result["label"] == mnist.y_test[0]
    assert read_number_.result["text"] == number.text and len(read_number_.result["digits"]) == 3
    # One call: the digit and every candidate of the number, so both name the same batch.
    assert read_digit.result["timings"]["batch_size"] == read_number_.result["timings"]["batch_size"] > 4
    assert blank.result["text"] == "" and "blank" in blank.result["reason"]
    big = render_number(mnist.x_test, mnist.y_test, 8, "touching", "photo", 0).data
    (slow,) = recognise([big], predictor, Bounds(40_000_000, 64 * 2**20, 32, seconds=0.001), reads=["number"])
    assert slow.error["code"] == "too_costly"
    (huge,) = recognise([big], predictor, Bounds(40_000_000, 10_000, 32), reads=["number"])
    assert huge.error["code"] == "too_costly"
    (long,) = recognise([big], predictor, Bounds(40_000_000, 64 * 2**20, max_digits=4), reads=["number"])
    assert long.error["code"] == "too_many_digits" and "limit of 4" in long.error["message"]


def test_a_reading_longer_than_allowed_is_refused_not_cut_short(mnist, predictor):
    # Touching digits can make the plan's early count too low; the reading itself is checked too.
    import dataclasses

    number = render_number(mnist.x_test, mnist.y_test, 4, "gap", "paper", 0)
    plan = plan_number(number.data)
    probabilities = predictor.probabilities(plan.inputs)
    assert plan.choose(probabilities).text == number.text
    with pytest.raises(TooManyDigits, match="holds 4 digits, more than the limit of 3"):
        dataclasses.replace(plan, max_digits=3).choose(probabilities)
