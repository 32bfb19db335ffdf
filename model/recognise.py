"""Recognise a batch of image files: preprocess each, one model call for all, a result per image.

The one place that turns image bytes into what the service answers; the workers, ``digits
predict --local`` and the bench's notebook baseline all call :func:`recognise`. No Redis here:
images in, readings out, in order. A bad image fails alone; the others still get their digits.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from model.preprocess import NotADigit, NotAnImage, preprocess, to_png


class Predictor(Protocol):
    """Anything that maps (N, 28, 28) float32 inputs to (N, 10) probabilities (model/backends.py)."""

    version: int | None

    def probabilities(self, images: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Reading:
    """What the service says of one image: a ``result`` (a digit, or none on a blank image) or an
    ``error`` ({code, message}) when it could not be read."""

    result: dict | None = None
    error: dict | None = None


def failed(code: str, message: str) -> Reading:
    return Reading(error={"code": code, "message": message})


def blank(reason: str) -> Reading:
    """An image with no digit on it: a result without a label, and why."""
    return Reading(result={"label": None, "reason": reason, "probabilities": None, "model_version": None})


def recognise(images: Sequence[bytes | None], predictor: Predictor | None, max_pixels: int) -> list[Reading]:
    """One :class:`Reading` per image, in order; None stands for an image that is no longer there.

    Preprocessing runs per image, the network once for the batch. Without a ``predictor`` (no
    model could be loaded) every readable image fails with ``model_unavailable``.
    """
    readings: list[Reading | None] = [None] * len(images)
    ready: list[tuple[int, np.ndarray]] = []
    started = time.perf_counter()
    for index, data in enumerate(images):
        if data is None:
            readings[index] = failed("image_missing", "the job's image is no longer stored")
            continue
        try:
            ready.append((index, preprocess(data, max_pixels)))
        except NotAnImage as exc:
            readings[index] = failed("invalid_image", str(exc))
        except NotADigit as exc:
            readings[index] = blank(str(exc))
        except Exception as exc:  # any other decoder failure must fail this image only
            readings[index] = failed("preprocessing_failed", f"{type(exc).__name__}: {exc}")
    preprocess_ms = (time.perf_counter() - started) * 1000 / max(1, len(images))
    if ready and predictor is None:
        for index, _ in ready:
            readings[index] = failed("model_unavailable", "no model could be loaded; see the worker's log")
    elif ready:
        started = time.perf_counter()
        probabilities = predictor.probabilities(np.stack([pixels for _, pixels in ready]))
        timings = {
            "preprocess_ms": round(preprocess_ms, 3),
            "predict_ms": round((time.perf_counter() - started) * 1000, 3),
            "batch_size": len(ready),
        }
        rounded = np.round(probabilities.astype(np.float64), 6).tolist()  # one call for the whole batch
        for (index, pixels), probs in zip(ready, rounded, strict=True):
            readings[index] = Reading(result=_labelled(pixels, probs, predictor.version, timings))
    return readings  # type: ignore[return-value]  (every slot is filled above)


def _labelled(pixels: np.ndarray, probabilities: list[float], version: int | None, timings: dict) -> dict:
    label = max(range(len(probabilities)), key=probabilities.__getitem__)
    return {
        "label": label,
        "confidence": probabilities[label],
        "probabilities": probabilities,
        "model_version": version,
        "input_png": base64.b64encode(to_png(pixels)).decode(),
        "timings": timings,
    }
