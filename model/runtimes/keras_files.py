"""``.keras`` files as bytes: the model store keeps bytes, Keras reads and writes only paths."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import keras


def load(source: bytes | str | os.PathLike) -> keras.Model:
    """A network from ``.keras`` bytes or a path, in safe mode (no code from the file is run)."""
    if not isinstance(source, bytes):
        return keras.models.load_model(source, compile=False, safe_mode=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        path.write_bytes(source)
        return keras.models.load_model(path, compile=False, safe_mode=True)


def dump(network: keras.Model) -> bytes:
    """The ``.keras`` file of ``network``, as bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        network.save(path)
        return path.read_bytes()
