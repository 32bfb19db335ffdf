"""What every runtime offers: a loaded model that maps a batch of 28x28 inputs to probabilities."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Predictor(Protocol):
    """Maps (N, 28, 28) float32 inputs in [0, 1] to (N, 10) probabilities; ``version`` is the
    stored version it was loaded from (None for a file), ``card`` its description."""

    version: int | None
    card: dict

    def probabilities(self, images: np.ndarray) -> np.ndarray: ...
