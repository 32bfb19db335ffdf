"""Turning what callers hand us (paths, bytes, PIL images) into named image bytes, and a first check.

The service rejects a request whole when one image in it is bad, so images that cannot be
images are caught here and never sent; the rest is left to the server to judge.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MULTIPART_OVERHEAD = 256  # boundary and part headers per image, generously

ImageInput = str | os.PathLike | bytes | bytearray | Any  # Any: a PIL.Image.Image


@dataclass(frozen=True)
class LoadedImage:
    """One input: ``data`` to send, or ``error`` ({code, message}) when it cannot be sent."""

    index: int
    source: str  # the path, or "images[i]" for bytes and PIL images
    data: bytes | None = None
    error: dict | None = None

    @property
    def filename(self) -> str:
        return os.path.basename(self.source) or self.source


def iter_images(images: Iterable[ImageInput]) -> Iterator[LoadedImage]:
    """Read the inputs in order, one at a time; unreadable files and non-images get an error instead of data."""
    for index, image in enumerate(images):
        yield _load(index, image)


def _load(index: int, image: ImageInput) -> LoadedImage:
    if isinstance(image, bytes | bytearray):
        return _checked(LoadedImage(index, f"images[{index}]", bytes(image)))
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        try:
            return _checked(LoadedImage(index, str(image), path.read_bytes()))
        except OSError as exc:
            return LoadedImage(index, str(image), error=_error("unreadable", f"cannot read it: {exc.strerror or exc}"))
    if hasattr(image, "save") and hasattr(image, "mode"):  # a PIL image, without importing Pillow for others
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return LoadedImage(index, f"images[{index}]", buffer.getvalue())
    raise TypeError(f"images[{index}] is a {type(image).__name__}: pass a path, bytes or a PIL image")


def _checked(image: LoadedImage) -> LoadedImage:
    """The image as it is, or with an error when it is empty or Pillow (if installed) cannot identify it."""
    if not image.data:
        return LoadedImage(image.index, image.source, error=_error("empty_image", "the file is empty"))
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # the client needs only requests; without Pillow the server judges alone
        return image
    try:
        Image.open(io.BytesIO(image.data)).close()  # reads the header only
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return LoadedImage(image.index, image.source, error=_error("not_an_image", "not an image"))
    except Image.DecompressionBombError:
        pass  # the server names the pixel limit better than we could
    return image


def _error(code: str, message: str) -> dict:
    return {"code": code, "message": message}


@dataclass
class RequestLimits:
    """How much one prediction request may carry; lowered when the server says it takes less."""

    max_images: int
    max_bytes: int


def chunks(images: Iterable[LoadedImage], limits: RequestLimits) -> Iterator[list[LoadedImage]]:
    """Consecutive runs of ``images`` within ``limits`` (as they are when each run starts).

    Lazy, so that only one request's worth of image bytes is held at a time.
    """
    chunk: list[LoadedImage] = []
    size = 0
    for image in images:
        cost = len(image.data or b"") + MULTIPART_OVERHEAD
        if chunk and (len(chunk) >= limits.max_images or size + cost > limits.max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(image)
        size += cost
    if chunk:
        yield chunk
