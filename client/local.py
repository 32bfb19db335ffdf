"""Predictions without a service: the model file and the service's own preprocessing, in this process.

This is the only part of the client that imports TensorFlow (through ``model.runtimes.keras_predictor``), and
only when called, so everything else stays quick to start and needs nothing but ``requests``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from client.errors import DigitsError
from client.images import ImageInput, iter_images
from client.predictions import Prediction
from model.shipped import SHIPPED_MODEL


def predict_locally(
    images: list[ImageInput], model_file: str | os.PathLike = SHIPPED_MODEL, read: str = "digit"
) -> list[Prediction]:
    """One :class:`Prediction` per image, in order, from ``model_file`` loaded here (the shipped model by default).

    Same preprocessing and the same network call as a worker, so the same labels as a service
    serving that model; ``model_version`` is None and each record names the ``model_file``.
    ``read="number"`` reads each image as a whole number, as a worker does for such jobs.
    """
    from model.recognise import Bounds, recognise
    from model.runtimes import tensorflow_setup
    from settings import get_settings

    settings = get_settings()
    tensorflow_setup.set_log_level(settings.tf_cpp_min_log_level)
    with _native_stderr_silenced():
        from model.runtimes.keras_predictor import KerasPredictor  # TensorFlow: only on this path

        try:
            predictor = KerasPredictor.from_file(model_file)
        except Exception as exc:  # Keras raises many kinds for a file that is not a model
            raise DigitsError(f"cannot load the model {model_file}: {exc}") from exc
    answers: dict[int, Prediction] = {}
    readable = []
    for image in iter_images(images):
        if image.error:
            answers[image.index] = Prediction.failed(image.source, **image.error)
        else:
            readable.append(image)
    bounds = Bounds(
        max_pixels=settings.max_image_pixels,
        max_decoded_bytes=settings.max_decoded_bytes,
        max_digits=settings.max_digits_per_number,
        seconds=settings.preprocess_budget_ms / 1000,
    )
    readings = recognise([image.data for image in readable], predictor, bounds, reads=[read] * len(readable))
    for image, reading in zip(readable, readings, strict=True):
        if reading.error:
            answers[image.index] = Prediction.failed(image.source, **reading.error)
        else:
            result = {**reading.result, "model_file": str(model_file)}
            record = {"id": None, "type": "predict", "read": read, "status": "succeeded"}
            record |= {"result": result, "error": None}
            answers[image.index] = Prediction.from_record(image.source, record)
    return [answers[index] for index in sorted(answers)]


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hide what is written to file descriptor 2 meanwhile.

    TensorFlow's C++ start-up notes (oneDNN, absl) go straight to fd 2, past TF_CPP_MIN_LOG_LEVEL
    and Python's logging, and would bury the command's own output. Exceptions still surface.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
