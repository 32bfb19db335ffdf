"""What an image costs to decode, known from its header alone: the web refuses what the workers
would not decode, and both judge by the same rule."""

from __future__ import annotations

import struct
import zlib

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


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Pillow's mode for each (bit depth, colour type) a PNG header may declare (PngImagePlugin).
_PNG_MODES = {
    (1, 0): "1", (2, 0): "L", (4, 0): "L", (8, 0): "L", (16, 0): "I;16",
    (8, 2): "RGB", (16, 2): "RGB",
    (1, 3): "P", (2, 3): "P", (4, 3): "P", (8, 3): "P",
    (8, 4): "LA", (16, 4): "RGBA",
    (8, 6): "RGBA", (16, 6): "RGBA",
}  # fmt: skip


def png_header(data: bytes) -> tuple[int, int, str] | None:
    """Width, height and Pillow's mode of a PNG, read from its header chunk alone (as Pillow would
    read them, a tenth of the cost of opening it); None when ``data`` does not begin with a
    well-formed PNG header, for Pillow to judge."""
    if len(data) < 33 or not data.startswith(PNG_SIGNATURE) or data[8:16] != b"\x00\x00\x00\rIHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    if struct.unpack(">I", data[29:33])[0] != zlib.crc32(data[12:29]) or not width or not height:
        return None
    mode = _PNG_MODES.get((depth, colour))
    return (width, height, mode) if mode else None
