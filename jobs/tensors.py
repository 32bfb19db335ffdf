"""A tensor job: an inference request's images as one prediction job, and the tensors it ends with.

An Open Inference Protocol request is answered whole and nobody polls its images one by one, so it
travels as one job (one record, one stored payload, one lane entry, one result) however many images
it holds, and the workers read it whole into a batch beside every other job. Its record names the
input it came as (``tensor``) and counts its images (``images``, written by create_jobs.lua); the
bounds on work (pending jobs and bytes per client, the lane, a worker's batch) count those images,
not the job. The payload is the tensor's bytes as the binary tensor data extension carries them:

    pixels  UINT8 [N, 28, 28]  N * 784 bytes, row-major
    image   BYTES [N]          each image file as its 4-byte little-endian length, then its bytes

The job succeeds with a :class:`TensorResult` when every image was read (one without a digit
included), and fails with the first unreadable image's error, whose message begins
``<input>[<index>]:`` as the protocol's answers do. Pure: numpy and typing only, for the web that
writes tensors and the worker that reads them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NotRequired

import numpy as np

# pydantic reads TypedDicts from typing_extensions on Python < 3.12
from typing_extensions import TypedDict

from model.results import Timings

PIXELS, IMAGE = "pixels", "image"
KINDS = (IMAGE, PIXELS)
DIGIT_SHAPE = (28, 28)
DIGIT_BYTES = DIGIT_SHAPE[0] * DIGIT_SHAPE[1]
_LENGTH = struct.Struct("<I")


class TensorResult(TypedDict):
    """A tensor job's outputs, one entry per image in order: its label (-1: no digit on it) and its
    10 probabilities (rounded as a single job's are; zeros where there is no digit), the model
    version that read them (None when no image had a digit), and what their model call cost (each
    image's share of preprocessing and the whole call, as a single job's; absent when none went
    through the model), which the statistics count for each image (jobs/records.py ``served``)."""

    label: list[int]
    probabilities: list[list[float]]
    model_version: int | None
    timings: NotRequired[Timings]


def pack_pixels(digits: np.ndarray) -> bytes:
    """The payload of N digits in MNIST's form, (N, 28, 28) uint8."""
    return np.ascontiguousarray(digits, dtype=np.uint8).tobytes()


def pack_files(files: Sequence[bytes]) -> bytes:
    """The payload of N image files."""
    return b"".join(part for file in files for part in (_LENGTH.pack(len(file)), file))


def unpack(kind: str, payload: bytes) -> list[np.ndarray] | list[bytes]:
    """The images of a payload, in order: (28, 28) uint8 digits, or image files; ValueError when the
    payload is not one (the web wrote it; it may have been damaged since)."""
    if kind == PIXELS:
        if not payload or len(payload) % DIGIT_BYTES:
            raise ValueError(f"{len(payload)} bytes are not whole 28x28 digits")
        return list(np.frombuffer(payload, np.uint8).reshape(-1, *DIGIT_SHAPE))
    if kind != IMAGE:
        raise ValueError(f"no tensor kind {kind[:32]!r}")
    files, offset = [], 0
    while offset < len(payload):
        if offset + _LENGTH.size > len(payload):
            raise ValueError("the payload ends inside an image's length")
        (length,) = _LENGTH.unpack_from(payload, offset)
        offset += _LENGTH.size
        if offset + length > len(payload):
            raise ValueError("the payload ends inside an image")
        files.append(payload[offset : offset + length])
        offset += length
    if not files:
        raise ValueError("the payload holds no image")
    return files


def outputs(result: TensorResult) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities FP32 [N, 10], labels INT64 [N]) of a tensor job's result."""
    return np.asarray(result["probabilities"], np.float32).reshape(-1, 10), np.asarray(result["label"], np.int64)
