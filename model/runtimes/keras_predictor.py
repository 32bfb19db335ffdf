"""A loaded model that turns batches of preprocessed 28x28 images into class probabilities fast.

The network is called through one compiled function (never ``model.predict`` per image),
warmed up on load so the first real request does not pay for tracing.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from model.runtimes import keras_files

MAX_BATCH = 256  # larger batches are split: no faster per image, and bounded memory


class KerasPredictor:
    """Holds one model version in memory; :meth:`probabilities` is safe to call repeatedly."""

    def __init__(self, network: keras.Model, version: int | None = None, card: dict | None = None):
        self.network = network
        self.version = version
        self.card = card or {}
        # The concrete function of a fixed signature: calling it skips tf.function's argument
        # matching, a fifth of the cost of a call on a few images.
        self._call = tf.function(
            lambda x: network(x, training=False),
            input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32)],
        ).get_concrete_function()
        self.probabilities(np.zeros((1, 28, 28), np.float32))  # trace and warm up now

    @classmethod
    def from_file(cls, path: str | os.PathLike, version: int | None = None, card: dict | None = None) -> KerasPredictor:
        """Load a ``.keras`` file in safe mode (no arbitrary code from the file is run)."""
        return cls(keras_files.load(path), version, card)

    @classmethod
    def from_bytes(cls, data: bytes, version: int | None = None, card: dict | None = None) -> KerasPredictor:
        return cls(keras_files.load(data), version, card)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, 28, 28) float32 in [0, 1] -> (N, 10) float32 probabilities, in input order."""
        x = np.asarray(images, dtype=np.float32).reshape(-1, 28, 28, 1)
        parts = [self._call(tf.constant(x[i : i + MAX_BATCH])).numpy() for i in range(0, len(x), MAX_BATCH)]
        return np.concatenate(parts) if parts else np.zeros((0, 10), np.float32)
