"""Classic machine learning on the same 28x28 input: logistic regression and a random forest.

Trained in steps ("epochs") so they report progress and can be cancelled like the networks,
stored with skops (a safe format: loading runs no code from the file, unlike pickle).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable

import numpy as np
import skops.io as skops
from sklearn.base import ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import SGDClassifier

FILE_FORMAT = "skops"
TREES_PER_EPOCH = 10
# The only non-builtin type these models hold; everything else is on skops's safe list.
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def logreg(seed: int, threads: int = 0) -> SGDClassifier:
    """Multinomial logistic regression on the 784 pixels (one pass over the data per epoch)."""
    return SGDClassifier(loss="log_loss", alpha=1e-4, learning_rate="adaptive", eta0=0.01, random_state=seed)


def forest(seed: int, threads: int = 0) -> RandomForestClassifier:
    """A random forest grown 10 trees per epoch on ``threads`` threads (0: every core); leaves of 5+
    samples keep the file a few MB."""
    return RandomForestClassifier(
        n_estimators=0, min_samples_leaf=5, warm_start=True, n_jobs=threads or -1, random_state=seed
    )


BUILDERS: dict[str, Callable[[int, int], ClassifierMixin]] = {"logreg": logreg, "forest": forest}


def flatten(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 or [0, 1] float -> (N, 784) float32 in [0, 1]."""
    x = np.asarray(images, dtype=np.float32).reshape(len(images), -1)
    return x / 255.0 if np.asarray(images).dtype == np.uint8 else x


def fit_epochs(
    arch: str,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    seed: int,
    on_epoch: Callable[[int, ClassifierMixin], None],
    should_stop: Callable[[], bool],
    threads: int = 0,
) -> ClassifierMixin | None:
    """Fit ``arch`` in ``epochs`` steps, calling ``on_epoch(epoch, model)`` after each.

    Returns None if ``should_stop`` said stop between steps.
    """
    model = BUILDERS[arch](seed, threads)
    classes = np.arange(10)
    rng = np.random.default_rng(seed)
    for epoch in range(1, epochs + 1):
        if should_stop():
            return None
        if arch == "forest":
            model.n_estimators += TREES_PER_EPOCH
            model.fit(x, y)
        else:
            order = rng.permutation(len(x))
            model.partial_fit(x[order], y[order], classes=classes)
        on_epoch(epoch, model)
    return model


def describe(model: ClassifierMixin) -> dict:
    """The settings that define a fitted model, for its card."""
    if isinstance(model, RandomForestClassifier):
        return {"trees": model.n_estimators, "min_samples_leaf": model.min_samples_leaf}
    return {"loss": model.loss, "alpha": model.alpha}


def to_bytes(model: ClassifierMixin) -> bytes:
    return skops.dumps(model, compression=zipfile.ZIP_DEFLATED, compresslevel=6)


def from_bytes(data: bytes) -> ClassifierMixin:
    """Load a skops file, refusing any type outside skops's safe list and ``TRUSTED_TYPES``."""
    return skops.loads(data, trusted=TRUSTED_TYPES)


class ClassicPredictor:
    """Same interface as :class:`model.predictor.Predictor`, for scikit-learn models."""

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
