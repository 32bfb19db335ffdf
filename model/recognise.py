"""Recognise a batch of image files: preprocess each, one model call for all, a result per image.

The one place that turns image bytes into what the service answers; the workers, ``digits
predict --local`` and the bench's notebook baseline all call :func:`recognise`. No Redis here:
images in, readings out, in order. A bad image fails alone; the others still get their digits.
Each image's reading is bounded (bytes decoded, time, digits in a number); a batch may be given a
time budget, after which it reads no more images and leaves the rest unread.

An image may be read as one digit (its label) or as a whole number (model/segment.py: every
candidate digit of it goes through the same model call as the batch's single digits, then the
best reading of them is chosen). An image read as one digit is also looked at as a number (its
candidates join the same call): when the number reader finds several digits in it, the digit's
result carries ``hint: read_as_number`` and says why, so several digits are never silently one;
``auto`` answers the number then, the digit otherwise. An image already in MNIST's 28x28 form is
one digit by construction and is not looked at again.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import numpy as np
from PIL import Image

from model.images.budget import OutOfTime, time_limit
from model.images.preprocess import (
    CANVAS,
    NotADigit,
    NotAnImage,
    TooCostly,
    decode,
    in_mnist_form,
    normalize,
    shown_as_sent,
    to_pngs,
)
from model.numbers.segment import NumberPlan, NumberReading, TooManyDigits, plan_number
from model.results import READ_AS_NUMBER, DigitResult, ErrorDetail, NumberDigit, NumberResult, Timings
from model.runtimes.predictor import Predictor

T = TypeVar("T")


# A digit already in MNIST's form (28x28 uint8, light ink on dark) travels as this header and its
# 784 pixels, and is read as it is, without preprocessing (the inference protocol's "pixels").
# No upload can pose as one: uploads must decode as an image file.
MNIST_PIXELS_HEADER = b"mnist-28x28-uint8\n"


def mnist_pixels_file(pixels: np.ndarray) -> bytes:
    """One 28x28 uint8 digit as the bytes :func:`recognise` reads as a digit in MNIST's form."""
    return MNIST_PIXELS_HEADER + np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()


class Reading(NamedTuple):  # one per image: a NamedTuple costs half a frozen dataclass
    """What the service says of one image: a ``result`` (a digit, or none on a blank image; or a
    number) or an ``error`` when it could not be read (the shapes are in model/results.py)."""

    result: DigitResult | NumberResult | None = None
    error: ErrorDetail | None = None


def failed(code: str, message: str) -> Reading:
    return Reading(error={"code": code, "message": message})


def blank(reason: str) -> Reading:
    """An image with no digit on it: a result without a label, and why."""
    return Reading(result={"label": None, "reason": reason, "probabilities": None, "model_version": None})


def blank_number(reason: str) -> Reading:
    """An image read as a number with no digit on it: empty text, and why."""
    return Reading(result={"text": "", "digits": [], "confidence": None, "reason": reason, "model_version": None})


@dataclass(frozen=True)
class Bounds:
    """What reading one image may cost: pixels, bytes once decoded, digits in a number, and
    seconds (0: no limit)."""

    max_pixels: int
    max_decoded_bytes: int
    max_digits: int
    seconds: float = 0.0


def recognise(
    images: Sequence[bytes | np.ndarray | None],
    predictor: Predictor | None,
    bounds: Bounds,
    budget_s: float = 0.0,
    reads: Sequence[str] | None = None,
    shown: Sequence[bool] | None = None,
    stops: Container[int] | None = None,
) -> list[Reading | None]:
    """One :class:`Reading` per image, in order; a None image stands for one no longer stored, and
    a (28, 28) uint8 array for a digit already in MNIST's form (as :func:`mnist_pixels_file`'s).

    ``reads`` says, per image, whether it is one ``digit`` (the default) or a whole ``number``;
    ``shown``, whether a digit's result shows the input the network saw (``input_png``, the
    default; encoding it is most of a digit's cost after the model call, and an inference
    request's answer has no use for it).
    Preprocessing (and a number's segmentation) runs per image, the network once for the batch.
    Without a ``predictor`` (no model could be loaded) every readable image fails with
    ``model_unavailable``. With ``budget_s``, no image is begun once that many seconds have
    passed: those left unread come back as None (at least one image is always read); with
    ``stops``, only before the images it holds (a job of several images is read whole or not at all).
    """
    readings: list[Reading | None] = [None] * len(images)
    ready: list[tuple[int, np.ndarray]] = []
    small: list[tuple[int, Image.Image]] = []  # 28x28 images: most are in MNIST's form, checked at once below
    plans: list[tuple[int, NumberPlan]] = []
    probes: list[tuple[int, NumberPlan]] = []  # images read as one digit, looked at as numbers too
    started = time.perf_counter()
    read = 0
    for index, data in enumerate(images):
        if budget_s and index and (stops is None or index in stops) and time.perf_counter() - started > budget_s:
            break
        if reads and reads[index] == "number":
            plan, readings[index] = _plan(data, bounds)
            if plan is not None:
                plans.append((index, plan))
        else:
            pixels, readings[index] = _read(data, bounds)
            if isinstance(pixels, Image.Image):
                small.append((index, pixels))
            elif pixels is not None:
                ready.append((index, pixels))
                if not _in_mnist_form(data) and (probe := _probe(data, bounds)):
                    probes.append((index, probe))
        read += 1
    # One array of their bytes: numpy's view of each Pillow image costs more than its bytes do.
    pixels = np.frombuffer(b"".join(gray.tobytes() for _, gray in small), np.uint8).reshape(-1, CANVAS, CANVAS)
    checked = in_mnist_form(pixels) if small else []
    sent: dict[int, bytes] = {}  # digits read as they came, in files that can be shown as they are
    for (index, gray), pixels in zip(small, checked, strict=True):
        if pixels is None:
            pixels, readings[index] = _guarded(bounds, blank, normalize, gray)
        elif (shown is None or shown[index]) and isinstance(data := images[index], bytes) and shown_as_sent(data):
            sent[index] = data
        if pixels is not None:
            ready.append((index, pixels))
    preprocess_ms = (time.perf_counter() - started) * 1000 / max(1, read)
    waiting = [index for index, _ in ready] + [index for index, _ in plans]
    if waiting and predictor is None:
        for index in waiting:
            readings[index] = failed("model_unavailable", "no model could be loaded; see the worker's log")
    elif waiting:
        started = time.perf_counter()
        # One call for the whole batch: its single digits, then every candidate digit of its numbers.
        inputs = np.concatenate([np.zeros((0, 28, 28), np.float32)] + [pixels[None] for _, pixels in ready]
                                + [plan.inputs for _, plan in plans + probes])  # fmt: skip
        probabilities = predictor.probabilities(inputs) if len(inputs) else np.zeros((0, 10))
        if probabilities.shape != (len(inputs), 10) or not np.all(np.isfinite(probabilities)):
            problem = f"the model answered {probabilities.shape} values, some not finite, for {len(inputs)} images"
            for index in waiting:
                readings[index] = failed("model_output_invalid", problem)
            return readings
        timings: Timings = {
            "preprocess_ms": round(preprocess_ms, 3),
            "predict_ms": round((time.perf_counter() - started) * 1000, 3),
            "batch_size": len(inputs),
        }
        rounded = np.round(probabilities[: len(ready)].astype(np.float64), 6).tolist()
        showing = [(i, pixels) for i, pixels in ready if (shown is None or shown[i]) and i not in sent]
        pngs = sent
        if showing:
            pngs.update(zip([i for i, _ in showing], to_pngs(np.stack([p for _, p in showing])), strict=True))
        for (index, _), probs in zip(ready, rounded, strict=True):
            readings[index] = Reading(result=_labelled(pngs.get(index), probs, predictor.version, timings))
        start = len(ready)
        for index, plan in plans:
            try:
                reading = plan.choose(probabilities[start : start + len(plan.groups)])
                readings[index] = Reading(result=_numbered(reading, predictor.version, timings))
            except TooManyDigits as exc:
                readings[index] = failed("too_many_digits", str(exc))
            start += len(plan.groups)
        for index, plan in probes:
            several = _several_digits(plan, probabilities[start : start + len(plan.groups)])
            start += len(plan.groups)
            if several is not None and readings[index] and readings[index].result:
                auto = bool(reads) and reads[index] == "auto"
                readings[index] = _hinted(readings[index], several, predictor.version, timings, auto)
    return readings


def _probe(data: bytes | None, bounds: Bounds) -> NumberPlan | None:
    """The number plan of an image read as one digit, to see whether it holds several; None when
    it cannot be made (the digit's own reading already says what is wrong with the image)."""
    plan, _ = _plan(data, bounds)
    return plan


def _several_digits(plan: NumberPlan, probabilities: np.ndarray) -> NumberReading | None:
    """The number reader's reading of an image read as one digit, when it finds several digits in it."""
    try:
        reading = plan.choose(probabilities)
    except TooManyDigits:
        return None
    return reading if len(reading.digits) > 1 else None


def _hinted(digit: Reading, several: NumberReading, version: int | None, timings: Timings, auto: bool) -> Reading:
    """An image read as one digit that holds several: with ``auto`` the number, else the digit's
    result with the hint to read it as a number, and why."""
    if auto:
        return Reading(result=_numbered(several, version, timings))
    reason = (
        f"the image seems to hold {len(several.digits)} digits ({several.text!r} read as a number), "
        "not one: read it as a number"
    )
    return Reading(result={**digit.result, "hint": READ_AS_NUMBER, "hint_reason": reason})  # type: ignore[typeddict-item]


def _read(data: bytes | None, bounds: Bounds) -> tuple[np.ndarray | Image.Image | None, Reading | None]:
    """The network's input for one image (a 28x28 image: still to be checked for MNIST's form), or
    the reading that says why there is none."""
    if data is None:
        return None, failed("image_missing", "the job's image is no longer stored")
    if isinstance(data, np.ndarray):
        return data.astype(np.float32) / 255.0, None
    if _in_mnist_form(data):
        pixels = np.frombuffer(data, np.uint8, offset=len(MNIST_PIXELS_HEADER)).reshape(28, 28)
        return pixels.astype(np.float32) / 255.0, None
    return _guarded(bounds, blank, _decode_unless_small, data, bounds)


def _in_mnist_form(data: bytes | np.ndarray) -> bool:
    """Whether ``data`` is a digit already in MNIST's form (the network's input as it is, too
    small to hold a number), not an image file."""
    if isinstance(data, np.ndarray):
        return True
    return data.startswith(MNIST_PIXELS_HEADER) and len(data) == len(MNIST_PIXELS_HEADER) + 28 * 28


def _decode_unless_small(data: bytes, bounds: Bounds) -> np.ndarray | Image.Image:
    gray = decode(data, bounds.max_pixels, bounds.max_decoded_bytes)
    return gray if gray.size == (CANVAS, CANVAS) else normalize(gray)


def _plan(data: bytes | None, bounds: Bounds) -> tuple[NumberPlan | None, Reading | None]:
    """Every candidate digit of one image read as a number, or the reading that says why there are none."""
    if data is None:
        return None, failed("image_missing", "the job's image is no longer stored")
    return _guarded(bounds, blank_number, plan_number, data, bounds.max_pixels, bounds.max_digits,
                    bounds.max_decoded_bytes)  # fmt: skip


def _guarded(
    bounds: Bounds, blank_reading: Callable[[str], Reading], work: Callable[..., T], *args
) -> tuple[T | None, Reading | None]:
    """What ``work(*args)`` returns within the time for one image, or the reading that says why not."""
    try:
        with time_limit(bounds.seconds):
            return work(*args), None
    except TooManyDigits as exc:
        return None, failed("too_many_digits", str(exc))
    except NotAnImage as exc:
        return None, failed("invalid_image", str(exc))
    except NotADigit as exc:
        return None, blank_reading(str(exc))
    except TooCostly as exc:
        return None, failed("too_costly", str(exc))
    except OutOfTime as exc:
        return None, failed("too_costly", f"reading the image {exc}, over the limit for one image")
    except Exception as exc:  # any other decoder failure must fail this image only
        return None, failed("preprocessing_failed", f"{type(exc).__name__}: {exc}")


def _numbered(reading: NumberReading, version: int | None, timings: Timings) -> NumberResult:
    """A number's result: its text and, per digit left to right, what a single digit's result holds
    and where the digit is in the image."""
    if not reading.digits:
        return {
            "text": "",
            "digits": [],
            "confidence": None,
            "reason": reading.reason or "no digits",
            "model_version": version,
            "timings": timings,
        }
    shown = to_pngs(np.stack([digit.input for digit in reading.digits]))
    digits: list[NumberDigit] = [
        {
            "label": digit.label,
            "confidence": round(digit.confidence, 6),
            "probabilities": [round(p, 6) for p in digit.probabilities],
            "box": list(digit.box),
            "input_png": base64.b64encode(png).decode(),
        }
        for digit, png in zip(reading.digits, shown, strict=True)
    ]
    return {
        "text": reading.text,
        "digits": digits,
        "confidence": round(reading.confidence, 6),
        "model_version": version,
        "timings": timings,
    }


def _labelled(
    input_png: bytes | None, probabilities: list[float], version: int | None, timings: Timings
) -> DigitResult:
    label = max(range(len(probabilities)), key=probabilities.__getitem__)
    result: DigitResult = {
        "label": label,
        "confidence": probabilities[label],
        "probabilities": probabilities,
        "model_version": version,
    }
    if input_png is not None:
        result["input_png"] = base64.b64encode(input_png).decode()
    result["timings"] = timings
    return result
