"""Image files whose headers declare their own parsing work: what the web must refuse with work
bounded by constants (model/images/headers.py). Used by tests/test_image_headers.py and bench.shared."""

from __future__ import annotations

import io
import struct

from PIL import Image


def tiff_with_strips(strips: int, width: int = 1, height: int = 2) -> bytes:
    """An uncompressed 8-bit grey TIFF whose strip table declares ``strips`` entries (a 1x2 TIFF
    with 400,000 took Pillow's open 1.3 s and 100 MB)."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (262, 3, 1, 1), (273, 4, strips, 0),
               (278, 4, 1, 1), (279, 4, strips, 0)]  # fmt: skip
    directory = 8
    offsets_at = directory + 2 + 12 * len(entries) + 4
    counts_at = offsets_at + 4 * strips
    pixels_at = counts_at + 4 * strips
    out = bytearray(b"II*\x00" + struct.pack("<I", directory) + struct.pack("<H", len(entries)))
    for tag, kind, count, value in entries:
        value = {273: offsets_at, 279: counts_at}.get(tag, value)
        out += struct.pack("<HHII", tag, kind, count, value)
    out += struct.pack("<I", 0)
    out += struct.pack(f"<{strips}I", *([pixels_at] * strips))
    out += struct.pack(f"<{strips}I", *([1] * strips))
    return bytes(out + b"\x80" * (width * height))


def polite(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((28, 28)).save(buffer, format=fmt)
    return buffer.getvalue()


def jpeg_with_app_segments(count: int) -> bytes:
    """A 28x28 JPEG with ``count`` empty APP5 segments before its tables (Pillow walks each in Python)."""
    jpeg = polite("JPEG")
    return jpeg[:2] + b"\xff\xe5\x00\x02" * count + jpeg[2:]


def gif_with_extension_blocks(count: int) -> bytes:
    """A 28x28 GIF with a comment of ``count`` one-byte sub-blocks before its first frame."""
    gif = polite("GIF")
    flags = gif[10]
    screen_end = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # after the global colour table
    return gif[:screen_end] + b"\x21\xfe" + b"\x01x" * count + b"\x00" + gif[screen_end:]
