"""PNG files read and written without Pillow's plugin machinery, for the cases that run per image.

A PNG is the usual upload, and Pillow's PNG plugin costs more in Python than its inflater costs in
C on an image of a digit: :func:`plain` hands a plain PNG's compressed pixels straight to Pillow's
inflater (a quarter of the cost of ``Image.open`` on a 28x28 digit). Anything else (other bit
depths, palettes, interlacing, transparency or orientation chunks, damage) returns None and goes
to Pillow whole, so it is read exactly as before.
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Pillow's mode for each (bit depth, colour type) a PNG header may declare (PngImagePlugin).
_MODES = {
    (1, 0): "1", (2, 0): "L", (4, 0): "L", (8, 0): "L", (16, 0): "I;16",
    (8, 2): "RGB", (16, 2): "RGB",
    (1, 3): "P", (2, 3): "P", (4, 3): "P", (8, 3): "P",
    (8, 4): "LA", (16, 4): "RGBA",
    (8, 6): "RGBA", (16, 6): "RGBA",
}  # fmt: skip
# Chunks that leave a plain PNG's pixels and orientation as they are (Pillow only files them in
# ``info``). Transparency (tRNS), text (which may hold XMP with an orientation) and EXIF do not.
_PLAIN_CHUNKS = frozenset({b"IHDR", b"IDAT", b"IEND", b"pHYs", b"gAMA", b"sRGB", b"cHRM", b"iCCP", b"tIME"})
_PLAIN_MODES = frozenset({"L", "LA", "RGB", "RGBA"})  # 8 bits per sample: Pillow's raw mode is its mode
_BARE_CHUNKS = frozenset({b"IHDR", b"IDAT", b"IEND"})  # the pixels and nothing a viewer would apply to them


def header(data: bytes) -> tuple[int, int, str] | None:
    """Width, height and Pillow's mode of a PNG, read from its header chunk alone (as Pillow would
    read them, a tenth of the cost of opening it); None when ``data`` does not begin with a
    well-formed PNG header, for Pillow to judge."""
    if len(data) < 33 or not data.startswith(SIGNATURE) or data[8:16] != b"\x00\x00\x00\rIHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    if struct.unpack(">I", data[29:33])[0] != zlib.crc32(data[12:29]) or not width or not height:
        return None
    mode = _MODES.get((depth, colour))
    return (width, height, mode) if mode else None


class Plain(NamedTuple):  # one per image read: a NamedTuple costs half a frozen dataclass
    """A plain PNG taken apart: its size, Pillow's mode, and its compressed pixel data; ``bare``
    when it holds nothing else (no colour, gamma, time or size chunk)."""

    width: int
    height: int
    mode: str
    compressed: bytes
    bare: bool


def plain(data: bytes) -> Plain | None:
    """The parts of a plain PNG (8 bits per sample, grey or RGB with or without alpha, not
    interlaced, every chunk intact and of :data:`_PLAIN_CHUNKS`); None for anything else.

    Decode with ``Image.frombytes(p.mode, (p.width, p.height), p.compressed, "zip", p.mode)``.
    """
    size = header(data)
    if size is None or size[2] not in _PLAIN_MODES or data[26:29] != b"\x00\x00\x00":  # methods, interlace
        return None
    compressed, position, bare = [], len(SIGNATURE) + 25, True  # after IHDR, which header() checked
    while position + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        end = position + 8 + length
        if kind not in _PLAIN_CHUNKS or end + 4 > len(data):
            return None
        if zlib.crc32(memoryview(data)[position + 4 : end]) != struct.unpack_from(">I", data, end)[0]:
            return None
        if kind == b"IDAT":
            compressed.append(data[position + 8 : end])
        elif kind == b"IEND":
            return Plain(size[0], size[1], size[2], b"".join(compressed), bare)
        bare = bare and kind in _BARE_CHUNKS
        position = end + 4
    return None  # no IEND: truncated


def gray_files(pixels: np.ndarray) -> list[bytes]:
    """Each (height, width) uint8 image of an (N, height, width) stack as an 8-bit grayscale PNG."""
    count, height, width = pixels.shape
    rows = np.zeros((count, height, width + 1), np.uint8)  # each row starts with filter type 0 (none)
    rows[:, :, 1:] = pixels
    start = SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    end = _chunk(b"IEND", b"")
    return [start + _chunk(b"IDAT", zlib.compress(image.tobytes(), 1)) + end for image in rows]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
