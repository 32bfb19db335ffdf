"""The scikit-learn runtime: the classic models (logistic regression, a random forest) stored with
skops, a safe format: loading runs no code from the file, unlike pickle."""

from __future__ import annotations

import numpy as np
import skops.io as skops
from sklearn.base import ClassifierMixin

FILE_FORMAT = "skops"
# The only non-builtin type these models hold; everything else is on skops's safe list.
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def flatten(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 or [0, 1] float -> (N, 784) float32 in [0, 1]."""
    x = np.asarray(images, dtype=np.float32).reshape(len(images), -1)
    return x / 255.0 if np.asarray(images).dtype == np.uint8 else x


def from_bytes(data: bytes) -> ClassifierMixin:
    """Load a skops file, refusing any type outside skops's safe list and ``TRUSTED_TYPES``."""
    return skops.loads(data, trusted=TRUSTED_TYPES)


class ClassicPredictor:
    """Same interface as :class:`model.runtimes.keras_predictor.KerasPredictor`, for scikit-learn models."""

    def __init__(self, model: ClassifierMixin, version: int | None = None, card: dict | None = None):
        self.model, self.version, self.card = model, version, card or {}
        if hasattr(model, "n_jobs"):
            model.n_jobs = 1  # thread start-up costs more than small batches gain from it

    @classmethod
    def from_bytes(cls, data: bytes, version: int | None = None, card: dict | None = None) -> ClassicPredictor:
        return cls(from_bytes(data), version, card)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, 28, 28) float32 in [0, 1] -> (N, 10) probabilities."""
        if len(images) == 0:
            return np.zeros((0, 10), np.float32)
        return self.model.predict_proba(flatten(images)).astype(np.float32)
