"""What an image costs to decode, known from its header alone: the web refuses what the workers
would not decode, and both judge by the same rule."""

from __future__ import annotations

from PIL import Image

JPEG_DRAFT_SIDE = 512  # big JPEGs are decoded at a power-of-two fraction, no smaller than this
REDUCED_FORMATS = ("JPEG", "MPO")  # MPO: the multi-picture JPEG many cameras write


def bytes_per_pixel(mode: str) -> int:
    """Bytes Pillow holds per pixel of ``mode`` once decoded (multi-band modes take four)."""
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def reduce_on_decode(image: Image.Image) -> None:
    """Ask a JPEG to decode at a reduced size (a power-of-two fraction, no side under 512): the
    digit is found on an overview of about 320 x 320 pixels anyway. Other formats decode whole."""
    if image.format in REDUCED_FORMATS:
        image.draft("L" if image.mode == "RGB" else image.mode, (JPEG_DRAFT_SIDE, JPEG_DRAFT_SIDE))


def decoded_bytes(image: Image.Image) -> int:
    """Bytes the opened (not yet decoded) ``image`` will take in memory once decoded, after
    :func:`reduce_on_decode` (which this applies)."""
    reduce_on_decode(image)
    return image.width * image.height * bytes_per_pixel(image.mode)
