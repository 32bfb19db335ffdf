"""Classic machine learning on the same 28x28 input: logistic regression and a random forest.

Trained in steps ("epochs") so they report progress and can be cancelled like the networks,
stored with skops (read back by model/runtimes/scikit_learn.py).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable

import numpy as np
import skops.io as skops
from sklearn.base import ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import SGDClassifier

TREES_PER_EPOCH = 10


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
