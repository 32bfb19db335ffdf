"""What an image costs, from its header alone (model/image_cost.py): PNG headers read without
Pillow must say what Pillow says of them."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from model.image_cost import png_header

rng = np.random.default_rng(0)
IMAGES = {
    "1": Image.fromarray(rng.integers(0, 2, (5, 9), dtype=np.uint8) * 255).convert("1"),
    "L": Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)),
    "I;16": Image.fromarray(rng.integers(0, 65536, (7, 3), dtype=np.uint16)),
    "RGB": Image.fromarray(rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)),
    "RGBA": Image.fromarray(rng.integers(0, 256, (4, 6, 4), dtype=np.uint8)),
    "LA": Image.fromarray(rng.integers(0, 256, (3, 3, 2), dtype=np.uint8), mode="LA"),
    "P": Image.fromarray(rng.integers(0, 256, (8, 2, 3), dtype=np.uint8)).convert("P"),
}


def png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


@pytest.mark.parametrize(("mode", "options"), [(mode, {}) for mode in sorted(IMAGES)] + [("P", {"bits": 4})])
def test_a_png_header_says_what_pillow_says(mode, options):
    data = png(IMAGES[mode], **options)
    opened = Image.open(io.BytesIO(data))
    assert png_header(data) == (opened.width, opened.height, opened.mode)  # so the same decoded bytes


def test_anything_but_a_well_formed_png_header_is_left_to_pillow():
    good = png(IMAGES["L"])
    broken_crc = good[:29] + bytes([good[29] ^ 1]) + good[30:]
    header = good[12:16] + b"\0\0\0\0" + good[20:29]
    zero_width = good[:12] + header + struct.pack(">I", zlib.crc32(header)) + good[33:]
    for data in (b"", good[:20], b"GIF89a" + good[6:], broken_crc, zero_width):
        assert png_header(data) is None
