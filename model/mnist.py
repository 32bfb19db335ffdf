"""MNIST loading: IDX files (gzip or not) or a Keras ``mnist.npz`` from a folder (the service's
``MNIST_DIR``).

Without a folder the data comes from ``keras.datasets.mnist`` (needs internet).
Every failure is a :class:`DataError` naming the file at fault.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.idx import COLS, ROWS, DataError, read_idx

# Mnist field -> IDX file stem; the same field names are the keys of Keras's mnist.npz.
FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class Mnist:
    """The MNIST split: uint8 images (N, 28, 28), 0 = background, 255 = ink; uint8 labels (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    def checksum(self) -> str:
        """SHA-256 over all four arrays: identifies the exact data a model was trained on."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_test, self.y_test):
            digest.update(np.ascontiguousarray(array).tobytes())
        return "sha256:" + digest.hexdigest()


def load_mnist(directory: str | os.PathLike | None) -> Mnist:
    """Return MNIST from ``directory``; without one (None or ""), from Keras's download."""
    if not directory:
        return _load_from_keras()
    root = Path(directory)
    if not root.is_dir():
        raise DataError(f"MNIST_DIR {root} is not a directory")
    npz = root / "mnist.npz"
    if npz.exists() and not _find_idx(root, FILES["x_train"]):
        return _load_npz(npz)
    arrays = {}
    for key, stem in FILES.items():
        path = _find_idx(root, stem)
        if path is None:
            raise DataError(f"{root / (stem + '.gz')}: missing (nor {stem} without .gz, nor mnist.npz)")
        arrays[key] = read_idx(path)
    return _checked(Mnist(source=str(root), **arrays))


def _find_idx(root: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (root / name).exists():
            return root / name
    return None


def _load_npz(path: Path) -> Mnist:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in FILES}
    except KeyError as exc:
        raise DataError(f"{path}: lacks array {exc}") from exc
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz ({exc})") from exc
    return _checked(Mnist(source=str(path), **arrays))


def _load_from_keras() -> Mnist:
    import keras  # heavy: only on this path

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as exc:  # network errors come in many types
        raise DataError(f"MNIST_DIR is not set and the Keras download failed: {exc}") from exc
    return _checked(Mnist(x_train, y_train, x_test, y_test, source="keras.datasets.mnist"))


def _checked(mnist: Mnist) -> Mnist:
    pairs = (("train", mnist.x_train, mnist.y_train), ("test", mnist.x_test, mnist.y_test))
    for split, images, labels in pairs:
        if images.shape[1:] != (ROWS, COLS) or images.dtype != np.uint8:
            raise DataError(f"{mnist.source}: {split} images have shape {images.shape}, dtype {images.dtype}")
        if len(images) != len(labels):
            raise DataError(f"{mnist.source}: {len(images)} {split} images but {len(labels)} labels")
        if labels.size and labels.max() > 9:
            raise DataError(f"{mnist.source}: {split} labels outside 0-9")
    return mnist
