"""IDX, the file format MNIST comes in (and corrections are exported in): uint8 images or labels
behind a big-endian header."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
ROWS = COLS = 28


class DataError(RuntimeError):
    """MNIST could not be read; the message names the file and what is wrong with it."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (images: magic 2051, labels: magic 2049), gzip-compressed or not."""
    path = Path(path)
    try:
        with path.open("rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        opener = gzip.open if gzipped else open
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot be read ({exc})") from exc
    if len(data) < 8:
        raise DataError(f"{path}: too short to be an IDX file ({len(data)} bytes)")
    magic, count = struct.unpack(">II", data[:8])
    if magic == IMAGE_MAGIC:
        header, shape = 16, (count, ROWS, COLS)
        if len(data) < 16 or struct.unpack(">II", data[8:16]) != (ROWS, COLS):
            raise DataError(f"{path}: images are not 28x28")
    elif magic == LABEL_MAGIC:
        header, shape = 8, (count,)
    else:
        raise DataError(f"{path}: bad magic number {magic} (expected {IMAGE_MAGIC} or {LABEL_MAGIC})")
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(f"{path}: {len(data)} bytes, expected {expected} for {count} items")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` as an IDX file (what :func:`read_idx` and every MNIST loader read): uint8 images
    (N, 28, 28) with magic 2051, or uint8 labels (N,) with magic 2049; not compressed."""
    data = np.ascontiguousarray(array, dtype=np.uint8)
    return idx_header(data.shape) + data.tobytes()


def idx_header(shape: tuple[int, ...]) -> bytes:
    """The header of an IDX file of uint8 images (N, 28, 28) or labels (N,); the data follows it
    as the array's bytes (so a file can be written in parts)."""
    if len(shape) == 3 and tuple(shape[1:]) == (ROWS, COLS):
        return struct.pack(">IIII", IMAGE_MAGIC, shape[0], ROWS, COLS)
    if len(shape) == 1:
        return struct.pack(">II", LABEL_MAGIC, shape[0])
    raise ValueError(f"IDX here holds (N, 28, 28) images or (N,) labels, not {shape}")
